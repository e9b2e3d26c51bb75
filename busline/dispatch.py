"""From delivery to settlement: size check, type check, decode, middleware and handler, then
dispatch the handler's outgoing messages, then ack. Anything that cannot be processed goes to the
error queue with its reason; if even that fails, the message is left unsettled so the broker
redelivers it. Nothing is dropped, and a failure never stops the consumer."""

from __future__ import annotations

import asyncio
import logging
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from busline.codec import BodyDecodeError, decode
from busline.context import Context
from busline.envelope import (
    HEADER_ATTEMPT,
    HEADER_ERROR_ATTEMPTS,
    HEADER_ERROR_FAILED_AT,
    HEADER_ERROR_HANDLER,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_QUEUE,
    HEADER_ERROR_REASON,
    HEADER_ERROR_SERVICE,
    HEADER_ERROR_TRACEBACK,
    HEADER_ERROR_TYPE,
)
from busline.errors import FailureReason, Reject, qualified_name
from busline.middleware import ConsumeNext
from busline.registry import HandlerSpec
from busline.retries import (
    HEADER_DELAYED_RETRIES,
    HEADER_LAST_ERROR,
    RetryLater,
    delayed_retry,
    policy_for,
)
from busline.transport import ConsumerSpec, Delivery, Subscription, Transport
from busline.workqueue import WorkQueue

if TYPE_CHECKING:
    from busline.bus import Bus

log = logging.getLogger("busline.dispatch")

#: Tracebacks in error headers are cut to this many characters (AMQP headers are not for essays).
MAX_TRACEBACK_CHARS = 8_000


class Endpoint:
    """One handler's consumer: a bounded pool of workers fed by its transport subscription."""

    def __init__(self, bus: Bus, spec: HandlerSpec, chain: ConsumeNext, prefetch: int) -> None:
        self._bus = bus
        self.spec = spec
        self._wire_name = spec.wire_name  # read per delivery; a property call saved each time
        self._chain = chain
        self.prefetch = prefetch
        self._inbox: WorkQueue[Delivery | None] = WorkQueue()
        self._workers: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None

    async def start(self, transport: Transport) -> None:
        """Start the workers, then the subscription that feeds them."""
        self._workers = [
            asyncio.create_task(self._work(), name=f"busline:{self.spec.queue}:{i}")
            for i in range(self.prefetch)
        ]
        bindings = (self.spec.wire_name,) if self.spec.queue != self.spec.wire_name else ()
        consumer = ConsumerSpec(queue=self.spec.queue, bindings=bindings, prefetch=self.prefetch)
        self._subscription = await transport.subscribe(consumer, self._inbox.put)

    async def stop(self, grace_period: float) -> None:
        """Stop receiving, finish and settle every message already received, stop the workers."""
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None
        # Workers read in order, so each sentinel comes after every delivery already queued.
        for _ in self._workers:
            self._inbox.put(None)
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=grace_period)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "%s: %d handler(s) still running after %.1fs; cancelled, their messages "
                    "will be redelivered",
                    self.spec.queue,
                    len(pending),
                    grace_period,
                )
                await asyncio.gather(*pending, return_exceptions=True)
        self._workers = []

    async def _work(self) -> None:
        get = self._inbox.get
        while True:
            delivery = await get()
            if delivery is None:
                return
            try:
                await self.process(delivery)
            except Exception:
                log.exception("%s: unexpected failure while dispatching", self.spec.queue)

    async def process(self, delivery: Delivery) -> None:
        """Process one delivery and settle it."""
        envelope = delivery.envelope
        spec = self.spec
        max_size = self._bus.max_message_size
        if len(envelope.body) > max_size:
            await self._dead_letter(
                delivery,
                FailureReason.TOO_LARGE,
                "MessageTooLargeError",
                f"body of {len(envelope.body)} bytes exceeds max_message_size of {max_size}",
            )
            return
        if envelope.message_type != self._wire_name:
            await self._dead_letter(
                delivery,
                FailureReason.UNKNOWN_TYPE,
                "UnknownMessageTypeError",
                f"queue {spec.queue!r} takes {spec.wire_name!r} messages, "
                f"got type {envelope.message_type!r}",
            )
            return
        try:
            message = decode(envelope.body, spec.message_type)
        except BodyDecodeError as exc:
            await self._dead_letter(delivery, exc.reason, "DecodeError", str(exc))
            return
        ctx = Context(self._bus, envelope, message, spec, delivery.redelivered)
        try:
            await self._chain(ctx)
        except RetryLater as retry:
            await self._defer(delivery, ctx, retry)
            return
        except Reject as exc:
            await self._dead_letter(delivery, FailureReason.REJECTED, exc, ctx=ctx)
            return
        except Exception as exc:
            await self._dead_letter(delivery, FailureReason.HANDLER_ERROR, exc, ctx=ctx)
            return
        if ctx.outgoing:
            try:
                await self._bus.dispatch_outgoing(ctx.outgoing)
            except Exception as exc:
                await self._outgoing_failed(delivery, ctx, exc)
                return
        await delivery.ack()

    async def _outgoing_failed(self, delivery: Delivery, ctx: Context, error: Exception) -> None:
        """The handler succeeded but its messages could not all be sent (broker trouble): try
        the whole message again later, as a delayed retry, rather than park a message whose
        handler did nothing wrong. Only once the delayed rounds are used up is it parked."""
        retry = delayed_retry(policy_for(ctx, self._bus.retry), ctx)
        if retry is None:
            await self._dead_letter(delivery, FailureReason.HANDLER_ERROR, error, ctx=ctx)
            return
        retry.__cause__ = error
        await self._defer(delivery, ctx, retry)

    async def _defer(self, delivery: Delivery, ctx: Context, retry: RetryLater) -> None:
        cause = retry.__cause__
        log.info(
            "%s: %s %s failed on attempt %d (%r); retrying in %.1fs",
            self.spec.queue,
            ctx.message_type,
            ctx.message_id,
            ctx.attempt,
            cause,
            retry.delay,
        )
        headers: dict[str, Any] = {
            HEADER_ATTEMPT: ctx.attempt + 1,
            HEADER_DELAYED_RETRIES: retry.round_number,
        }
        if cause is not None:
            headers[HEADER_LAST_ERROR] = f"{qualified_name(type(cause))}: {cause}"[:1000]
        try:
            await delivery.defer(retry.delay, headers)
        except Exception:
            log.exception(
                "%s: could not schedule the retry of %s; left unsettled so the broker "
                "redelivers it",
                self.spec.queue,
                ctx.message_id,
            )

    async def _dead_letter(
        self,
        delivery: Delivery,
        reason: FailureReason,
        error: BaseException | str,
        detail: str = "",
        ctx: Context | None = None,
    ) -> None:
        telemetry = self._bus.telemetry
        if telemetry is not None:
            telemetry.record_dead_letter(self.spec, delivery.envelope, reason, error, ctx)
        headers = self.error_headers(delivery, reason, error, detail)
        if ctx is not None:
            headers[HEADER_ERROR_ATTEMPTS] = ctx.attempt
        if isinstance(error, BaseException):
            log.warning(
                "%s: %s %s moved to the error queue (%s): %s",
                self.spec.queue,
                delivery.envelope.message_type,
                delivery.envelope.message_id,
                reason.value,
                headers[HEADER_ERROR_MESSAGE],
                exc_info=error,
            )
        else:
            log.warning(
                "%s: message %s moved to the error queue (%s): %s",
                self.spec.queue,
                delivery.envelope.message_id,
                reason.value,
                detail,
            )
        try:
            await delivery.dead_letter(headers)
        except Exception:
            log.exception(
                "%s: could not move message %s to the error queue; left unsettled so the "
                "broker redelivers it",
                self.spec.queue,
                delivery.envelope.message_id,
            )

    def error_headers(
        self,
        delivery: Delivery,
        reason: FailureReason,
        error: BaseException | str,
        detail: str = "",
    ) -> dict[str, Any]:
        """The headers that explain, in the error queue, why this message is there."""
        headers: dict[str, Any] = {
            HEADER_ERROR_REASON: reason.value,
            HEADER_ERROR_QUEUE: delivery.queue,
            HEADER_ERROR_HANDLER: self.spec.name,
            HEADER_ERROR_SERVICE: self._bus.service,
            HEADER_ERROR_FAILED_AT: datetime.fromtimestamp(self._bus.clock.now(), UTC).isoformat(),
            HEADER_ERROR_ATTEMPTS: delivery.envelope.attempt,
        }
        if isinstance(error, BaseException):
            headers[HEADER_ERROR_TYPE] = qualified_name(type(error))
            headers[HEADER_ERROR_MESSAGE] = str(error)[:2000]
            text = "".join(traceback.format_exception(error))
            headers[HEADER_ERROR_TRACEBACK] = text[-MAX_TRACEBACK_CHARS:]
        else:
            headers[HEADER_ERROR_TYPE] = error
            headers[HEADER_ERROR_MESSAGE] = detail[:2000]
        return headers
