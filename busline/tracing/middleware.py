"""The tracing middleware: a CONSUMER span around each handled message, a PRODUCER span around
each send and publish, the messaging metrics, and the creation hook that keeps traces unbroken
when messages leave later (after the handler, or from the outbox relay)."""

from __future__ import annotations

import time

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from busline.context import Context, OutgoingMessage
from busline.errors import FailureReason, Reject, qualified_name
from busline.middleware import ConsumeNext, Middleware, PublishNext
from busline.retries import RetryLater
from busline.tracing import propagation, scope
from busline.tracing import semconv as sc
from busline.tracing.telemetry import (
    ITEM_RECORDED,
    ITEM_SPAN,
    ConsumerInfo,
    Telemetry,
    fail,
)


class _Scope:
    """The process span of the message being handled, for :func:`busline.tracing.record_retry`."""

    __slots__ = ("info", "span", "telemetry")

    def __init__(self, telemetry: Telemetry, span: trace.Span, info: ConsumerInfo) -> None:
        self.telemetry = telemetry
        self.span = span
        self.info = info

    def retry(self, ctx: Context, error: BaseException, delay: float) -> None:
        self.telemetry.record_retry(
            self.span,
            self.info,
            attempt=ctx.attempt,
            delay=delay,
            kind="immediate" if delay <= 0 else "delayed",
            error=error,
        )


class TracingMiddleware(Middleware):
    """The outermost built-in middleware when tracing is on (never installed when it is off)."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def capture_creation_context(self, out: OutgoingMessage) -> None:
        """The bus's creation hook: remember the context a message was prepared in.

        A handler's messages are sent after it returns (or by the outbox relay, maybe after a
        restart); by then its span is no longer current, so the context is stored with the
        message and :meth:`on_publish` parents the send span on it.
        """
        propagation.capture_origin(out.envelope.headers)

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Run the rest of the chain inside a CONSUMER ``process`` span."""
        telemetry = self.telemetry
        info = telemetry.consumer(ctx.handler)
        envelope = ctx.envelope
        parent, links = telemetry.consume_parent(envelope.headers, info.mode)
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
        scope_token = scope.current.set(_Scope(telemetry, span, info))
        error_type: str | None = None
        started = time.perf_counter()
        try:
            await call_next(ctx)
        except RetryLater as retry:
            cause = retry.__cause__ or retry
            error_type = qualified_name(type(cause))
            span.record_exception(cause)
            fail(span, error_type, str(cause))
            telemetry.record_retry(
                span,
                info,
                attempt=ctx.attempt,
                delay=retry.delay,
                kind="delayed",
                error=cause,
                round_number=retry.round_number,
            )
            ctx.items[ITEM_RECORDED] = True
            raise
        except Exception as exc:
            # Whatever a middleware lets out, the dispatcher moves to the error queue.
            error_type = qualified_name(type(exc))
            span.record_exception(exc)
            fail(span, error_type, str(exc))
            reason = (
                FailureReason.REJECTED if isinstance(exc, Reject) else FailureReason.HANDLER_ERROR
            )
            telemetry.record_dead_letter_event(span, info, reason.value, error_type)
            ctx.items[ITEM_RECORDED] = True
            raise
        except BaseException as exc:  # cancelled at shutdown: the broker redelivers it
            error_type = qualified_name(type(exc))
            fail(span, error_type, "interrupted; the message will be redelivered")
            raise
        finally:
            scope.current.reset(scope_token)
            otel_context.detach(token)
            span.end()
            ctx.items[ITEM_SPAN] = span.get_span_context()
            telemetry.processed(info, time.perf_counter() - started, error_type)

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
