"""Idempotency: a consumer applies each message's effect once, however often it arrives.

Every message carries an idempotency key (``idempotency_key=`` on send/publish; the message id
by default). With a store, the key is recorded in the inbox table in the same transaction as the
handler's own writes; a message whose key is already there is acknowledged without running the
handler. Keys are recorded per consumer (the handler's queue), so two subscribers of one event in
one service each apply it once. Records are kept for ``StoreSettings.inbox_retention``, which
must be longer than the retry window (checked at start).

Without a store, :class:`MemoryDeduplication` offers a weaker, in-process window: see its notes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from busline.clock import Clock, SystemClock
from busline.context import Context
from busline.middleware import ConsumeNext, Middleware
from busline.stores import InboxRecord, StoreSettings

log = logging.getLogger("busline.inbox")


def consumer_of(ctx: Context) -> str:
    """The inbox scope of a handler: its queue (a command's, or ``service.subscriber``)."""
    return ctx.handler.queue


def inbox_record(ctx: Context, now: float) -> InboxRecord:
    """The inbox record of the incoming message: its consumer, key and id, and ``now``."""
    return (consumer_of(ctx), ctx.idempotency_key, ctx.message_id, now)


def log_duplicate(ctx: Context) -> None:
    """Say that the incoming message is a duplicate, acknowledged without handling."""
    log.info(
        "%s: %s %s has idempotency key %r, already processed; acknowledged without handling",
        consumer_of(ctx),
        ctx.message_type,
        ctx.message_id,
        ctx.idempotency_key,
    )


def check_retention(settings: StoreSettings, retry_window: float) -> None:
    """Refuse an inbox retention that a retried duplicate could outlive."""
    if settings.inbox_retention <= retry_window:
        raise ValueError(
            f"StoreSettings.inbox_retention ({settings.inbox_retention:g}s) must be longer than "
            f"the retry window ({retry_window:g}s): a message retried after its key expired "
            f"would be processed twice. Raise inbox_retention or shorten the retry delays."
        )


class MemoryDeduplication(Middleware):
    """Skip messages whose idempotency key this process handled recently (no store needed).

    Weaker than the inbox of a store, and documented as such: the window lives in this process
    only (lost on restart, not shared by competing instances), holds at most ``max_keys`` keys
    for at most ``window`` seconds, and is not atomic with the handler's effects (a crash after
    the effect but before the ack repeats it). Use a store for exactly-once effects.

    Add it like any middleware: ``Bus(..., middleware=[MemoryDeduplication()])``.
    """

    def __init__(
        self, max_keys: int = 10_000, window: float = 3600.0, clock: Clock | None = None
    ) -> None:
        if max_keys < 1 or window <= 0:
            raise ValueError("max_keys must be at least 1 and window positive")
        self.max_keys = max_keys
        self.window = window
        self.clock: Clock = clock or SystemClock()
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._running: dict[tuple[str, str], asyncio.Event] = {}

    def seen(self, consumer: str, key: str, now: float) -> bool:
        """Whether ``consumer`` handled ``key`` within the window."""
        at = self._seen.get((consumer, key))
        return at is not None and now - at < self.window

    def remember(self, consumer: str, key: str, now: float) -> None:
        """Record ``key`` as handled, evicting the oldest keys beyond ``max_keys``."""
        self._seen[(consumer, key)] = now
        self._seen.move_to_end((consumer, key))
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Run the handler unless the key was handled; a copy arriving while the first is being
        handled waits for its outcome."""
        slot = (consumer_of(ctx), ctx.idempotency_key)
        clock = self.clock
        while (running := self._running.get(slot)) is not None:
            await running.wait()
        if self.seen(*slot, clock.now()):
            log.info("%s: duplicate %s skipped (in-memory window)", slot[0], ctx.message_id)
            return
        done = self._running[slot] = asyncio.Event()
        try:
            await call_next(ctx)
            self.remember(*slot, clock.now())
        finally:
            del self._running[slot]
            done.set()
