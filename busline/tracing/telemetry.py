"""One bus's telemetry: its tracer and instruments, the spans outside middleware, the caches.

Everything that does not change per message (span names, static attributes, metric attributes,
parent-or-link mode) is computed once per destination or handler and cached, so the per-message
work is a dictionary merge and the OpenTelemetry calls themselves.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from busline.errors import qualified_name
from busline.messages import MessageKind
from busline.tracing import propagation
from busline.tracing import semconv as sc
from busline.tracing.attributes import (
    Attributes,
    ConsumerInfo,
    ProducerInfo,
    check_trace_mode,
    consumer_info,
    producer_info,
    server_attributes,
)
from busline.tracing.instruments import Instruments
from busline.tracing.settings import TRACE_MODES, TraceMode

if TYPE_CHECKING:
    from busline.outcomes import Outcome
    from busline.registry import HandlerSpec
    from busline.tracing.settings import TracingSettings


def sdk_configured() -> bool:
    """Whether the application installed a real (SDK) tracer or meter provider globally.

    The API alone only ever returns its proxy or no-op providers; anything else came from an
    SDK (or another implementation), which means someone wants the telemetry.
    """
    tracer_provider = trace.get_tracer_provider()
    if not isinstance(tracer_provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return True
    meter_provider = metrics.get_meter_provider()
    return not type(meter_provider).__module__.startswith("opentelemetry.metrics")


class Telemetry:
    """A bus's tracing and metrics: created at start when tracing is on, else never.

    The tracing middleware records through it; the bus wires :meth:`set_outbox_backlog` to the
    store's relay.
    """

    def __init__(
        self,
        *,
        service: str,
        system: str,
        url: str = "",
        error_queue: str = "busline.error",
        commands_as: TraceMode = "child",
        events_as: TraceMode = "link",
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.service = service
        self.system = system
        self.error_queue = error_queue
        self.commands_as = commands_as
        self.events_as = events_as
        version = _version()
        self.tracer = trace.get_tracer("busline", version, tracer_provider)
        meter = metrics.get_meter("busline", version or "", meter_provider)
        self.instruments = Instruments(meter, service)
        self._server = server_attributes(url) if system == sc.SYSTEM_RABBITMQ else {}
        self._producers: dict[tuple[MessageKind, str], ProducerInfo] = {}
        self._consumers: dict[str, ConsumerInfo] = {}

    @classmethod
    def create(
        cls,
        settings: TracingSettings,
        *,
        service: str,
        system: str,
        url: str,
        error_queue: str,
        handlers: Sequence[HandlerSpec],
    ) -> Telemetry | None:
        """The telemetry ``settings`` ask for, ``None`` when tracing is off.

        ``enabled=None`` (the default) turns tracing on when a tracer or meter provider was
        given or an SDK provider is installed globally. Checked once, at start: with tracing
        off no middleware is installed at all, so it costs nothing.
        """
        wanted = settings.enabled
        if wanted is None:
            wanted = (
                settings.tracer_provider is not None
                or settings.meter_provider is not None
                or sdk_configured()
            )
        if not wanted:
            return None
        telemetry = cls(
            service=service,
            system=system,
            url=url,
            error_queue=error_queue,
            commands_as=settings.commands_as,
            events_as=settings.events_as,
            tracer_provider=settings.tracer_provider,
            meter_provider=settings.meter_provider,
        )
        for spec in handlers:
            telemetry.consumer(spec)
        return telemetry

    # -- per destination and per handler -------------------------------------------------------

    def producer(self, kind: MessageKind, destination: str) -> ProducerInfo:
        """The cached span name and attributes for sending ``kind`` to ``destination``."""
        key = (kind, destination)
        info = self._producers.get(key)
        if info is None:
            info = self._producers[key] = producer_info(
                kind, destination, self.system, self.service, self._server
            )
        return info

    def consumer(self, spec: HandlerSpec) -> ConsumerInfo:
        """The cached span name, attributes and trace mode of handler ``spec``."""
        info = self._consumers.get(spec.queue)
        if info is None:
            default = self.commands_as if spec.kind is MessageKind.COMMAND else self.events_as
            info = self._consumers[spec.queue] = consumer_info(
                spec, default, self.system, self.service, self._server
            )
        return info

    # -- consume side --------------------------------------------------------------------------

    @staticmethod
    def consume_parent(headers: Mapping[str, Any], mode: TraceMode) -> tuple[Context, list[Link]]:
        """The parent context and links of a process span for a message with ``headers``.

        The span always links to the message's creation context, as the conventions ask; in
        ``"child"`` mode that context is also its parent, in ``"link"`` mode the span starts a
        new trace (keeping the baggage that travelled with the message).
        """
        extracted = propagation.extract(headers)
        creation = propagation.span_context_in(extracted)
        if creation is None:
            return extracted, []
        links = [Link(creation)]
        if mode == "child":
            return extracted, links
        return trace.set_span_in_context(trace.INVALID_SPAN, extracted), links

    def processed(self, info: ConsumerInfo, seconds: float, error_type: str | None) -> None:
        """Record the metrics of one processed message."""
        attributes = info.metric_attributes
        self.instruments.consumed_messages.add(1, attributes)
        if error_type is not None:
            attributes = {**attributes, sc.ERROR_TYPE: error_type}
        self.instruments.process_duration.record(seconds, attributes)

    def record_retry(
        self,
        span: trace.Span,
        info: ConsumerInfo,
        *,
        attempt: int,
        delay: float,
        kind: str,
        error: BaseException | None,
        round_number: int | None = None,
    ) -> None:
        """Add a ``busline.retry`` event to ``span`` and count the retry."""
        event: Attributes = {
            sc.BUSLINE_RETRY_KIND: kind,
            sc.BUSLINE_RETRY_ATTEMPT: attempt,
            sc.BUSLINE_RETRY_DELAY: float(delay),
        }
        if round_number is not None:
            event[sc.BUSLINE_RETRY_ROUND] = round_number
        if error is not None:
            event[sc.EXCEPTION_TYPE] = qualified_name(type(error))
            event[sc.EXCEPTION_MESSAGE] = str(error)[:1000]
        span.add_event(sc.EVENT_RETRY, event)
        self.instruments.retries.add(1, {**info.metric_attributes, sc.BUSLINE_RETRY_KIND: kind})

    def record_dead_letter_event(
        self, span: trace.Span, info: ConsumerInfo, reason: str, error_type: str
    ) -> None:
        """Add a ``busline.dead_letter`` event to ``span`` and count the message."""
        span.add_event(
            sc.EVENT_DEAD_LETTER,
            {
                sc.BUSLINE_DEAD_LETTER_REASON: reason,
                sc.ERROR_TYPE: error_type,
                sc.BUSLINE_ERROR_QUEUE: self.error_queue,
            },
        )
        self.instruments.dead_lettered.add(
            1, {**info.metric_attributes, sc.BUSLINE_DEAD_LETTER_REASON: reason}
        )

    def record_dead_letter(self, outcome: Outcome) -> None:
        """Record a message moved to the error queue that had no process span (it could not
        even be decoded, or busline failed around it): a short CLIENT span
        ``"dead_letter {destination}"`` of operation type ``settle``, related to the message's
        creation context like a process span would be, with the error and a
        ``busline.dead_letter`` event.
        """
        envelope = outcome.envelope
        info = self.consumer(outcome.handler)
        parent, links = self.consume_parent(envelope.headers, info.mode)
        attributes: Attributes = {
            **info.attributes,
            sc.MESSAGING_OPERATION_TYPE: sc.OPERATION_SETTLE,
            sc.MESSAGING_OPERATION_NAME: "dead_letter",
            sc.MESSAGING_MESSAGE_ID: envelope.message_id,
            sc.MESSAGING_MESSAGE_CONVERSATION_ID: envelope.correlation_id,
        }
        error, error_type = outcome.error, outcome.error_type
        reason = outcome.reason.value if outcome.reason else "internal"
        span = self.tracer.start_span(
            f"dead_letter {info.destination}", parent, SpanKind.CLIENT, attributes, links
        )
        try:
            if isinstance(error, BaseException):
                span.record_exception(error)
            fail(
                span, error_type, str(error) if isinstance(error, BaseException) else outcome.detail
            )
            self.record_dead_letter_event(span, info, reason, error_type)
        finally:
            span.end()
        if outcome.message is None:  # never reached the middleware, which counts what it processes
            self.instruments.consumed_messages.add(1, info.metric_attributes)

    # -- sagas ---------------------------------------------------------------------------------

    @contextmanager
    def saga_step(self, saga: str, key: str) -> Iterator[SagaSpan]:
        """An INTERNAL span ``"saga {name}"`` around one saga step, in the trace of the message
        that drove it; the step sets its outcome (``started``, ``updated``, ``completed``,
        ``compensated``, ``not found``, ``conflict``, ``dropped``)."""
        attributes: Attributes = {sc.BUSLINE_SAGA_NAME: saga, sc.BUSLINE_SAGA_KEY: key}
        with self.tracer.start_as_current_span(
            f"saga {saga}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            yield SagaSpan(span)

    # -- publish side --------------------------------------------------------------------------

    def sent(self, info: ProducerInfo, seconds: float, error_type: str | None) -> None:
        """Record the metrics of one send or publish."""
        attributes = info.metric_attributes
        if error_type is not None:
            attributes = {**attributes, sc.ERROR_TYPE: error_type}
        self.instruments.sent_messages.add(1, attributes)
        self.instruments.operation_duration.record(seconds, attributes)

    # -- outbox --------------------------------------------------------------------------------

    def set_outbox_backlog(self, count: int) -> None:
        """Report how many committed outbox messages wait to be published (the store calls it,
        e.g. after each relay pass); the ``busline.outbox.backlog`` gauge reports the latest."""
        self.instruments.backlog = count


class SagaSpan:
    """The span of one saga step, for the step to record its outcome."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def outcome(self, outcome: str) -> None:
        """Record what the step did to its instance."""
        self._span.set_attribute(sc.BUSLINE_SAGA_OUTCOME, outcome)


def fail(span: trace.Span, error_type: str, description: str) -> None:
    """Mark ``span`` failed: error status and the ``error.type`` attribute."""
    span.set_attribute(sc.ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {description}"[:500]))


def _version() -> str | None:
    try:
        return importlib.metadata.version("busline")
    except importlib.metadata.PackageNotFoundError:
        return None


__all__ = [
    "TRACE_MODES",
    "ConsumerInfo",
    "ProducerInfo",
    "Telemetry",
    "TraceMode",
    "check_trace_mode",
    "fail",
    "sdk_configured",
]
