"""Trace context in envelope headers.

Two things travel in the headers:

* the message's *creation context*, written and read with the globally configured propagator
  (``traceparent``, ``tracestate``, ``baggage`` with the default W3C propagators): what
  consumers parent or link their process spans to;
* the context a message was *prepared* in (``busline-origin-*`` headers), captured when a
  handler calls ``ctx.send`` (or anything calls ``Bus.prepare``). Such a message may leave much
  later (after the handler returns, or from the outbox relay after a restart), when that context
  is no longer current: the send span uses the captured one as its parent and removes these
  headers before the message reaches the broker. They are busline-internal, so they use a
  compact encoding of the span context rather than the propagator (twice as fast both ways).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter

#: Prefix of the headers holding the context a message was prepared in (never on the wire when
#: the message goes through the bus's publish chain).
ORIGIN_PREFIX: Final = "busline-origin-"
ORIGIN_SPAN: Final = ORIGIN_PREFIX + "span"
ORIGIN_TRACESTATE: Final = ORIGIN_PREFIX + "tracestate"
ORIGIN_BAGGAGE: Final = ORIGIN_PREFIX + "baggage"

#: The context with nothing in it: extraction starts here, not from the current context, because
#: a worker task inherits whatever was current when the bus started (an unrelated span).
EMPTY: Final = Context()


class HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads header values as text: AMQP clients may hand long strings back as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        """Return the value of ``key`` as a one-item list, or ``None`` when absent."""
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, bytes | bytearray):
            return [bytes(value).decode("utf-8", "replace")]
        return [value if isinstance(value, str) else str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        """Return every header name."""
        return [str(key) for key in carrier]


class HeaderSetter(Setter[MutableMapping[str, Any]]):
    """Writes propagator fields as plain string headers."""

    def set(self, carrier: MutableMapping[str, Any], key: str, value: str) -> None:
        """Set header ``key``."""
        carrier[key] = value


GETTER: Final = HeaderGetter()
SETTER: Final = HeaderSetter()
_BAGGAGE: Final = W3CBaggagePropagator()


def inject(headers: MutableMapping[str, Any], context: Context | None = None) -> None:
    """Write ``context`` (default: the current one) into ``headers`` as the creation context."""
    propagate.inject(headers, context, SETTER)


def extract(headers: Mapping[str, Any]) -> Context:
    """Read the creation context from ``headers`` (an empty context when there is none)."""
    if not headers:
        return EMPTY
    return propagate.extract(headers, EMPTY, GETTER)


def span_context_in(context: Context) -> trace.SpanContext | None:
    """The valid span context held by ``context``, or ``None``."""
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def capture_origin(headers: MutableMapping[str, Any]) -> None:
    """Store the current span context (and baggage) in ``headers`` for a later send."""
    context = otel_context.get_current()
    span_context = trace.get_current_span(context).get_span_context()
    if span_context.is_valid:
        headers[ORIGIN_SPAN] = (
            f"{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{span_context.trace_flags:02x}"
        )
        if span_context.trace_state:
            headers[ORIGIN_TRACESTATE] = span_context.trace_state.to_header()
    if baggage.get_all(context):
        carrier: dict[str, str] = {}
        _BAGGAGE.inject(carrier, context, SETTER)
        if "baggage" in carrier:
            headers[ORIGIN_BAGGAGE] = carrier["baggage"]


def take_origin(headers: MutableMapping[str, Any]) -> Context | None:
    """Remove the captured origin headers and return their context (``None`` when absent)."""
    span_value = headers.pop(ORIGIN_SPAN, None)
    state_value = headers.pop(ORIGIN_TRACESTATE, None)
    baggage_value = headers.pop(ORIGIN_BAGGAGE, None)
    if span_value is None and baggage_value is None:
        return None
    context = EMPTY
    if baggage_value is not None:
        context = _BAGGAGE.extract({"baggage": baggage_value}, context, GETTER)
    span_context = _parse_span(span_value, state_value)
    if span_context is not None:
        context = trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)
    return context


def _parse_span(value: Any, state: Any) -> trace.SpanContext | None:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    try:
        trace_id, span_id, flags = (int(part, 16) for part in value.split("-"))
    except ValueError:
        return None  # damaged: the send span then just has no captured parent
    trace_state = None
    if state:
        text = bytes(state).decode() if isinstance(state, bytes | bytearray) else str(state)
        trace_state = trace.TraceState.from_header([text])
    span_context = trace.SpanContext(
        trace_id, span_id, True, trace.TraceFlags(flags & 0xFF), trace_state
    )
    return span_context if span_context.is_valid else None


__all__ = [
    "EMPTY",
    "GETTER",
    "ORIGIN_PREFIX",
    "SETTER",
    "HeaderGetter",
    "HeaderSetter",
    "capture_origin",
    "extract",
    "inject",
    "span_context_in",
    "take_origin",
]
