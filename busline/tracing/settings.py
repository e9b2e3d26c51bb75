"""Tracing options, grouped as users set them; free of OpenTelemetry imports (an untraced bus
never loads the API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

#: How a process span relates to the span that sent its message: ``"child"`` continues the
#: sender's trace, ``"link"`` starts a new trace that links back to it.
TraceMode = Literal["child", "link"]
TRACE_MODES: Final = ("child", "link")


def check_trace_as(value: Any) -> str | None:
    """The check of the ``trace_as=`` handler option."""
    if value in TRACE_MODES:
        return None
    return f"trace_as= takes 'child' or 'link', got {value!r}"


#: The per-handler options tracing reads (accepted whether tracing is on or not).
TRACING_HANDLER_OPTIONS: Final[Mapping[str, Any]] = {"trace_as": check_trace_as}


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OpenTelemetry spans and metrics of a bus (docs/tracing.md).

    Args:
        enabled: ``None`` (default): on when a tracer or meter provider is given here or an SDK
            provider is installed globally, checked at start; ``True``/``False`` force it.
        commands_as: ``"child"`` (default): a command's process span continues the sender's
            trace; ``"link"``: it starts a new trace linked to the send span.
        events_as: The same for events; ``"link"`` by default (a fact has many readers).
            Handlers override both with ``trace_as=``.
        tracer_provider: Use this tracer provider instead of the global one.
        meter_provider: Use this meter provider instead of the global one.
    """

    enabled: bool | None = None
    commands_as: TraceMode = "child"
    events_as: TraceMode = "link"
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None

    @classmethod
    def of(
        cls,
        tracing: bool | TracingSettings | None,
        commands_as: TraceMode = "child",
        events_as: TraceMode = "link",
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> TracingSettings:
        """One settings object from ``Bus(tracing=...)`` and the separate keywords."""
        if isinstance(tracing, TracingSettings):
            return tracing
        return cls(tracing, commands_as, events_as, tracer_provider, meter_provider)

    def __post_init__(self) -> None:
        for mode in (self.commands_as, self.events_as):
            if mode not in TRACE_MODES:
                raise ValueError(f"trace_*_as must be 'child' or 'link', got {mode!r}")
