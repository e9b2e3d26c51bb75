"""``--trace console|otlp``: an OpenTelemetry SDK provider for the shop's buses."""

from __future__ import annotations

from typing import Any


class TracingUnavailable(RuntimeError):
    """The exporter asked for is not installed."""


def tracer_provider(kind: str) -> Any:
    """A provider exporting every span to the console, or over OTLP (to
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, by default localhost:4317)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise TracingUnavailable(
            "--trace needs the OpenTelemetry SDK: pip install 'busline[otel]'"
        ) from None
    if kind == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingUnavailable(
                "--trace otlp needs opentelemetry-exporter-otlp (pip install "
                "opentelemetry-exporter-otlp); --trace console works without it"
            ) from None
        exporter: Any = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "sample-shop"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
