"""OpenTelemetry set-ups of the ``tracing`` workloads: none, the SDK with traces, and metrics too.

The SDK runs for real (spans are created, recorded, ended, queued and batched; measurements are
aggregated), but the exporters drop what they are given: the figures are the SDK's and busline's
cost inside the application process, not the cost of a network exporter, which depends on the
collector and runs in the SDK's own thread anyway. Providers are passed to the bus
(``Bus(tracer_provider=..., meter_provider=...)``), never installed globally, and shut down after
the run so the export thread stops before the worker reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: ``off``: ``Bus(tracing=False)``. ``auto``: the default ``tracing=None`` with no SDK configured
#: (busline must then install nothing). ``sdk``: an SDK tracer provider with a
#: ``BatchSpanProcessor`` (defaults). ``sdk+metrics``: that plus an SDK meter provider with a
#: periodic reader (defaults: every 60 s).
TelemetryMode = Literal["off", "auto", "sdk", "sdk+metrics"]
MODES: tuple[str, ...] = ("off", "auto", "sdk", "sdk+metrics")


@dataclass
class TelemetrySetup:
    """What a bus is given for one mode, and how to stop it afterwards."""

    mode: str
    #: Keyword arguments for ``Bus(...)``.
    bus_options: dict[str, Any] = field(default_factory=dict)
    #: The span exporter, to count what reached it (``None`` without traces).
    spans: Any = None
    _providers: list[Any] = field(default_factory=list)

    def shutdown(self) -> dict[str, Any]:
        """Flush and stop the providers (joins the export thread); return what was exported."""
        for provider in self._providers:
            provider.shutdown()
        self._providers.clear()
        return {"spans_exported": self.spans.exported} if self.spans is not None else {}


def telemetry_setup(mode: str) -> TelemetrySetup:
    """The bus options for ``mode`` (see :data:`TelemetryMode`)."""
    if mode == "off":
        return TelemetrySetup(mode, {"tracing": False})
    if mode == "auto":
        # Nothing passed and nothing installed globally: busline looks for an SDK at start,
        # finds none, and must then add no middleware and no hook.
        return TelemetrySetup(mode, {})
    if mode not in ("sdk", "sdk+metrics"):
        raise ValueError(f"unknown telemetry mode {mode!r}; choose from {', '.join(MODES)}")

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    spans = _dropping_span_exporter()
    tracer_provider = TracerProvider()
    # The processor's defaults (queue 2048, batches of 512, 5 s delay): what users get.
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    setup = TelemetrySetup(mode, {"tracer_provider": tracer_provider}, spans, [tracer_provider])
    if mode == "sdk+metrics":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(_dropping_metric_exporter())
        meter_provider = MeterProvider(metric_readers=[reader])
        setup.bus_options["meter_provider"] = meter_provider
        setup._providers.append(meter_provider)
    return setup


def _dropping_span_exporter() -> Any:
    """A span exporter that counts the spans it is handed and drops them."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class DroppingSpanExporter(SpanExporter):
        def __init__(self) -> None:
            self.exported = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    return DroppingSpanExporter()


def _dropping_metric_exporter() -> Any:
    """A metric exporter that drops what it is handed (aggregation still happens in the SDK)."""
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        MetricsData,
    )

    class DroppingMetricExporter(MetricExporter):
        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    return DroppingMetricExporter()
