"""The tracing middleware: a CONSUMER span around each handled message (with its retries and
dead-lettering, heard as outcomes), a PRODUCER span around each send and publish, the messaging
metrics, and the creation context stored in each message so traces stay unbroken when messages
leave later (after the handler, or from the outbox relay)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from busline.context import Context
from busline.envelope import HEADER_TRACE_AS
from busline.errors import FailureReason, qualified_name
from busline.middleware import ConsumeNext, Middleware, OptionCheck, PublishNext
from busline.outcomes import Outcome, OutcomeKind
from busline.outgoing import OutgoingMessage
from busline.tracing import propagation, scope
from busline.tracing import semconv as sc
from busline.tracing.settings import TRACING_HANDLER_OPTIONS
from busline.tracing.telemetry import ConsumerInfo, Telemetry, fail


class _Scope:
    """The process span of the message being handled, and what became of it so far."""

    __slots__ = ("ctx", "error_type", "info", "span")

    def __init__(self, ctx: Context, span: trace.Span, info: ConsumerInfo) -> None:
        self.ctx = ctx
        self.span = span
        self.info = info
        self.error_type: str | None = None


class TracingMiddleware(Middleware):
    """The outermost built-in middleware when tracing is on (never installed when it is off)."""

    handler_options: ClassVar[Mapping[str, OptionCheck]] = TRACING_HANDLER_OPTIONS

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def on_create(self, out: OutgoingMessage) -> None:
        """Remember the context a message was created in, in its headers.

        A handler's messages are sent after it returns (or by the outbox relay, maybe after a
        restart); by then its span is no longer current, so the context is stored with the
        message and :meth:`on_publish` parents the send span on it.
        """
        propagation.capture_origin(out.envelope.headers)

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Run the rest of the chain inside a CONSUMER ``process`` span; what becomes of the
        message (retries, error queue) arrives through :meth:`on_outcome` meanwhile."""
        telemetry = self.telemetry
        info = telemetry.consumer(ctx.handler)
        envelope = ctx.envelope
        mode = info.mode
        if HEADER_TRACE_AS in envelope.headers:
            wanted = envelope.headers[HEADER_TRACE_AS]
            mode = "link" if wanted in ("link", b"link") else "child"
        parent, links = telemetry.consume_parent(envelope.headers, mode)
        attributes = {
            **info.attributes,
            sc.MESSAGING_MESSAGE_ID: envelope.message_id,
            sc.MESSAGING_MESSAGE_CONVERSATION_ID: envelope.correlation_id,
            sc.BUSLINE_MESSAGE_ATTEMPT: ctx.attempt,
        }
        span = telemetry.tracer.start_span(
            info.span_name, parent, SpanKind.CONSUMER, attributes, links
        )
        # Current while the handler runs, so the handler's own spans are its children.
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        current = _Scope(ctx, span, info)
        scope_token = scope.current.set(current)
        started = time.perf_counter()
        try:
            await call_next(ctx)
        except BaseException as exc:  # cancelled at shutdown: the broker redelivers it
            current.error_type = qualified_name(type(exc))
            fail(span, current.error_type, "interrupted; the message will be redelivered")
            raise
        finally:
            scope.current.reset(scope_token)
            otel_context.detach(token)
            span.end()
            telemetry.processed(info, time.perf_counter() - started, current.error_type)

    def on_outcome(self, outcome: Outcome) -> None:
        """Record a retry or the error queue on the process span of the message, or, for a
        message that never had one (it could not be decoded), as a ``dead_letter`` span."""
        current = scope.current.get()
        if not isinstance(current, _Scope) or current.ctx.envelope is not outcome.envelope:
            if outcome.kind is OutcomeKind.DEAD_LETTERED:
                self.telemetry.record_dead_letter(outcome)
            return
        span, info, telemetry = current.span, current.info, self.telemetry
        error = outcome.error
        if outcome.kind is OutcomeKind.RETRY:
            telemetry.record_retry(
                span,
                info,
                attempt=outcome.attempt,
                delay=outcome.delay,
                kind="immediate" if outcome.delay <= 0 else "delayed",
                error=error if isinstance(error, BaseException) else None,
            )
            return
        if isinstance(error, BaseException) and outcome.kind is OutcomeKind.DEFERRED:
            error = error.__cause__ or error
        error_type = error if isinstance(error, str) else qualified_name(type(error))
        current.error_type = error_type
        if isinstance(error, BaseException):
            span.record_exception(error)
        fail(span, error_type, str(error))
        if outcome.kind is OutcomeKind.DEFERRED:
            telemetry.record_retry(
                span,
                info,
                attempt=outcome.attempt,
                delay=outcome.delay,
                kind="delayed",
                error=error if isinstance(error, BaseException) else None,
                round_number=outcome.round_number,
            )
        else:
            reason = (outcome.reason or FailureReason.HANDLER_ERROR).value
            telemetry.record_dead_letter_event(span, info, reason, error_type)

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        """Run the rest of the publish chain inside a ``send``/``publish`` span.

        The span's context becomes the message's creation context (PRODUCER), unless the
        message already carries one (set by the application, or by an earlier pass through the
        chain before an outbox diverted it): then it is left unchanged, as the conventions ask,
        and the span is a CLIENT span linking to it.
        """
        telemetry = self.telemetry
        info = telemetry.producer(out.kind, out.destination)
        envelope = out.envelope
        headers = envelope.headers
        parent = propagation.take_origin(headers) if headers else None
        creation = propagation.span_context_in(propagation.extract(headers)) if headers else None
        attributes = {
            **info.attributes,
            sc.MESSAGING_MESSAGE_ID: envelope.message_id,
            sc.MESSAGING_MESSAGE_CONVERSATION_ID: envelope.correlation_id,
        }
        if creation is None:
            span = telemetry.tracer.start_span(
                info.span_name, parent, SpanKind.PRODUCER, attributes
            )
        else:
            if parent is None and not trace.get_current_span().get_span_context().is_valid:
                # Published with nothing current (the outbox relay): stay in the message's trace.
                parent = trace.set_span_in_context(trace.NonRecordingSpan(creation))
            span = telemetry.tracer.start_span(
                info.span_name, parent, SpanKind.CLIENT, attributes, [Link(creation)]
            )
        active = trace.set_span_in_context(span, parent)
        if creation is None:
            propagation.inject(headers, active)
        token = otel_context.attach(active)
        error_type: str | None = None
        started = time.perf_counter()
        try:
            await call_next(out)
        except BaseException as exc:
            error_type = qualified_name(type(exc))
            span.record_exception(exc)
            fail(span, error_type, str(exc))
            raise
        finally:
            otel_context.detach(token)
            span.end()
            telemetry.sent(info, time.perf_counter() - started, error_type)


__all__ = ["TracingMiddleware"]
