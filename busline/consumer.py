"""Consuming: from a delivery to its settlement.

For each delivery of a handler's queue: size check, type check, decode, then the consume chain
(middleware, retries, the store transaction, the handler, the sending of its messages), then the
settlement (:mod:`busline.settling`): ack, delayed retry or error queue. Anything that cannot be
processed goes to the error queue with its reason; every delivery is settled exactly once, whatever
a handler, a middleware or the telemetry does, and a failure never stops the consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from busline.clock import Clock
from busline.codec import BodyDecodeError, decode
from busline.context import Context, HandlerServices
from busline.errors import FailureReason, Reject
from busline.middleware import ConsumeNext, Middleware, compose_consume
from busline.outcomes import Outcome, OutcomeKind
from busline.registry import HandlerSpec
from busline.retries import RetryLater
from busline.sending import SendAfterSuccess
from busline.settling import Settler
from busline.transport import ConsumerSpec, Delivery, Subscription, Transport
from busline.workqueue import WorkQueue

log = logging.getLogger("busline.consumer")


class Consumer:
    """One handler's consumer: a bounded pool of workers fed by its transport subscription.

    Args:
        spec: The handler.
        outer: Middleware that wraps the verdict (tracing): it sees outcomes while its scope is
            open, through ``on_outcome``.
        inner: The rest of the chain, down to the handler; what it raises is the verdict.
        sender: Sends what the handler left in ``ctx.outgoing`` once it succeeded.
        services: What contexts share (message factory, outcome observers, ...).
        prefetch: Messages in flight (and workers).
        max_message_size: Larger bodies go to the error queue unread.
        clock: For the error headers' time.
    """

    def __init__(
        self,
        spec: HandlerSpec,
        outer: Sequence[Middleware],
        inner: ConsumeNext,
        sender: SendAfterSuccess,
        services: HandlerServices,
        prefetch: int,
        max_message_size: int,
        clock: Clock,
    ) -> None:
        self.spec = spec
        self._wire_name = spec.wire_name  # read per delivery; a property call saved each time
        self._inner = inner
        self._send = sender.send
        self._chain = compose_consume(outer, self._decide)
        self._services = services
        #: Whether the idempotency key is recorded in a store's inbox (then it must be text).
        self._keeps_keys = services.has_store
        self.prefetch = prefetch
        self._max_size = max_message_size
        self._settler = Settler(services.service, spec.name, spec.queue, clock)
        #: Deliveries received and not yet taken by a worker.
        self._backlog: WorkQueue[Delivery | None] = WorkQueue()
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
        self._subscription = await transport.subscribe(consumer, self._backlog.put)

    async def stop(self, grace_period: float) -> None:
        """Stop receiving, finish and settle every message already received, stop the workers."""
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None
        # Workers read in order, so each sentinel comes after every delivery already queued.
        for _ in self._workers:
            self._backlog.put(None)
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
        get = self._backlog.get
        while True:
            delivery = await get()
            if delivery is None:
                return
            try:
                await self.process(delivery)
            except Exception:  # process() settles and never raises; this is a last resort
                log.exception("%s: unexpected failure while consuming", self.spec.queue)

    async def process(self, delivery: Delivery) -> None:
        """Process one delivery and settle it exactly once."""
        outcome: Outcome | None
        try:
            ctx = self._read(delivery)
            if isinstance(ctx, Outcome):  # refused before the middleware
                outcome = ctx
            else:
                # Inline rather than a helper coroutine: one frame less on every message.
                try:
                    await self._chain(ctx)
                    outcome = ctx.outcome
                except Exception as exc:
                    outcome = self._after_outer_failure(ctx, exc)
        except Exception as exc:
            outcome = self._refuse(delivery, FailureReason.INTERNAL, exc)
        if outcome is not None:
            await self._settler.settle(delivery, outcome)
            return
        try:  # the common case, without a call layer: every message pays for this one
            await delivery.ack()
        except Exception:
            log.exception(
                "%s: could not acknowledge message %s; left unsettled so the broker redelivers it",
                self.spec.queue,
                delivery.envelope.message_id,
            )

    def _read(self, delivery: Delivery) -> Context | Outcome:
        """The context of ``delivery``, or the outcome of one that cannot be read (too large,
        of another type, undecodable). Synchronous: no frame of its own on the way."""
        envelope = delivery.envelope
        spec = self.spec
        if len(envelope.body) > self._max_size:
            return self._refuse(
                delivery,
                FailureReason.TOO_LARGE,
                "MessageTooLargeError",
                f"body of {len(envelope.body)} bytes exceeds max_message_size of {self._max_size}",
            )
        if envelope.message_type != self._wire_name:
            return self._refuse(
                delivery,
                FailureReason.UNKNOWN_TYPE,
                "UnknownMessageTypeError",
                f"queue {spec.queue!r} takes {spec.wire_name!r} messages, "
                f"got type {envelope.message_type!r}",
            )
        if self._keeps_keys and "\x00" in envelope.effective_idempotency_key:
            # Legal in AMQP, but no SQL text column holds a NUL: refused here, with the reason,
            # rather than failing in the inbox on every retry.
            return self._refuse(
                delivery,
                FailureReason.UNDECODABLE,
                "BadHeaderError",
                "the message id or idempotency key contains a NUL character, which the inbox "
                "cannot record",
            )
        try:
            message = decode(envelope.body, spec.message_type)
        except BodyDecodeError as exc:
            return self._refuse(delivery, exc.reason, "DecodeError", str(exc))
        return Context(self._services, envelope, message, spec, delivery.redelivered)

    def _after_outer_failure(self, ctx: Context, error: Exception) -> Outcome | None:
        """An outer middleware (tracing) raised: before the verdict, busline failed around the
        handler (parked as internal); after it, the verdict stands."""
        if not ctx.decided:
            return self._failed(ctx, FailureReason.INTERNAL, error)
        log.error(
            "%s: a middleware failed after the verdict; ignored", self.spec.queue, exc_info=error
        )
        return ctx.outcome

    async def _decide(self, ctx: Context) -> None:
        """The verdict, inside the outer middleware: run the rest of the chain and turn what it
        raises into the outcome (reported while the outer scopes are still open)."""
        try:
            await self._inner(ctx)
            if ctx.outgoing:
                await self._send(ctx)
        except RetryLater as retry:
            ctx.outcome = Outcome(
                OutcomeKind.DEFERRED,
                ctx.handler,
                ctx.envelope,
                ctx.attempt,
                retry,
                delay=retry.delay,
                round_number=retry.round_number,
                message=ctx.message,
            )
            ctx.report(ctx.outcome)
        except Reject as exc:
            self._failed(ctx, FailureReason.REJECTED, exc)
        except Exception as exc:
            self._failed(ctx, FailureReason.HANDLER_ERROR, exc)
        ctx.decided = True

    def _failed(self, ctx: Context, reason: FailureReason, error: BaseException) -> Outcome:
        outcome = Outcome(
            OutcomeKind.DEAD_LETTERED,
            ctx.handler,
            ctx.envelope,
            ctx.attempt,
            error,
            reason=reason,
            message=ctx.message,
        )
        ctx.outcome = outcome
        ctx.report(outcome)
        return outcome

    def _refuse(
        self,
        delivery: Delivery,
        reason: FailureReason,
        error: BaseException | str,
        detail: str = "",
    ) -> Outcome:
        """The outcome of a delivery that never reached the middleware."""
        outcome = Outcome(
            OutcomeKind.DEAD_LETTERED,
            self.spec,
            delivery.envelope,
            delivery.envelope.attempt,
            error,
            reason=reason,
            detail=detail,
        )
        outcomes = self._services.outcomes
        if outcomes:
            outcomes.report(outcome)
        return outcome
