"""The outbox relay: sends the committed outbox rows nobody sent, and cleans up old rows.

A bus normally sends a transaction's messages itself right after the commit. The relay is for the
rest: rows a crash left behind (taken over once their ``dispatch_lease`` has passed) and rows that
could not be sent because the broker was unreachable (retried with a backoff per row, up to
``relay_max_backoff``). It polls; on PostgreSQL several relays (one per bus instance) share the
work through row locks, so none sends a row another is sending. It keeps running through broker
and database outages, logging when it starts and stops failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from busline.clock import Clock
from busline.stores import OutboxRow, Store, StoreSettings

log = logging.getLogger("busline.relay")

SendRow = Callable[[OutboxRow], Awaitable[None]]

#: Rows deleted per statement when purging, so a purge never holds locks for long.
PURGE_BATCH = 1000


class Relay:
    """Polls the store for due outbox rows and sends them, oldest transaction first.

    Args:
        source: The service whose messages this relay sends (the envelope's source).
        store: The open store.
        send: Sends one row's message (through the bus's publish chain) and returns once the
            broker confirmed it.
        clock: Time for leases, backoffs and retention.
        settings: Pacing, batch size, backoff and retention.
    """

    def __init__(
        self, source: str, store: Store, send: SendRow, clock: Clock, settings: StoreSettings
    ) -> None:
        self.source = source
        self._store = store
        self._send = send
        self._clock = clock
        self._settings = settings
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        #: The latest send failure, ``None`` once a round succeeds.
        self.last_error: str | None = None

    def start(self) -> None:
        """Start polling in a background task."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="busline:outbox-relay")

    def wake(self) -> None:
        """Poll now instead of after the interval (e.g. a dispatch just failed)."""
        self._wakeup.set()

    async def stop(self, grace_period: float = 10.0) -> None:
        """Finish the row being sent (for up to ``grace_period`` seconds), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wakeup.set()
        _, pending = await asyncio.wait({task}, timeout=grace_period)
        if pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run_once(self) -> int:
        """Claim the due rows of up to ``relay_batch`` transactions and send them in order;
        return how many were sent. Stops at the first failure, which is noted on its row."""
        settings = self._settings
        now = self._clock.now()
        claiming = self._store.claim(
            self.source, now, settings.relay_batch, settings.dispatch_lease
        )
        async with claiming as claim:
            for row in claim.rows:
                if self._stopping:
                    break
                try:
                    await self._send(row)
                except Exception as exc:
                    error = describe(exc)
                    claim.failure = (row.id, error, now + self._backoff(row.attempts + 1))
                    self._note_failure(error, row)
                    break
                claim.sent.append(row.id)
        if claim.sent and claim.failure is None:
            self._note_recovery(len(claim.sent))
        return len(claim.sent)

    def _backoff(self, attempts: int) -> float:
        settings = self._settings
        return float(min(settings.relay_max_backoff, settings.relay_interval * 2 ** (attempts - 1)))

    def _note_failure(self, error: str, row: OutboxRow) -> None:
        self.last_error = error
        if not self._failing:
            self._failing = True
            log.warning(
                "outbox relay cannot send %s %s (%s); will keep retrying",
                row.envelope.message_type,
                row.envelope.message_id,
                error,
            )

    def _note_recovery(self, sent: int) -> None:
        self.last_error = None
        if self._failing:
            self._failing = False
            log.warning("outbox relay is sending again (%d message(s) just sent)", sent)

    async def purge(self) -> int:
        """Delete dispatched rows and inbox records past their retention; return how many."""
        settings = self._settings
        now = self._clock.now()
        removed = 0
        while True:
            batch = await self._store.purge(
                now - settings.outbox_retention, now - settings.inbox_retention, PURGE_BATCH
            )
            removed += batch
            if batch == 0:
                return removed

    async def _run(self) -> None:
        next_purge = time.monotonic()
        while not self._stopping:
            sent = 0
            try:
                sent = await self.run_once()
            except Exception:
                log.warning("outbox relay round failed; retrying", exc_info=True)
            if time.monotonic() >= next_purge and not self._stopping:
                next_purge = time.monotonic() + self._settings.cleanup_interval
                try:
                    await self.purge()
                except Exception:
                    log.warning("outbox cleanup failed; retrying later", exc_info=True)
            if sent == 0:
                await self._sleep(self._settings.relay_interval)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        self._wakeup.clear()


def describe(error: BaseException) -> str:
    """A one-line account of ``error`` for logs and the ``last_error`` column."""
    return f"{type(error).__name__}: {error}"[:2000]
