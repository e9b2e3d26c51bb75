"""The outbox relay: sends the committed outbox rows nobody sent, and cleans up old rows.

A bus normally sends a transaction's messages itself right after the commit. The relay is for the
rest: rows a crash left behind (taken over once their ``dispatch_lease`` has passed) and rows that
could not be sent because the broker was unreachable (retried with a backoff per row, up to
``relay_max_backoff``). It polls; on PostgreSQL several relays (one per bus instance) share the
work through row locks, so none sends a row another is sending. It sends many transactions'
messages at once (a window of unconfirmed publishes), each transaction's in order. It keeps
running through broker and database outages, logging when it starts and stops failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from busline.clock import Clock
from busline.stores import Claim, OutboxRow, Store, StoreSettings

log = logging.getLogger("busline.relay")

SendRow = Callable[[OutboxRow], Awaitable[None]]

#: Rows deleted per statement when purging, so a purge never holds locks for long.
PURGE_BATCH = 1000


class Relay:
    """Polls the store for due outbox rows and sends them, oldest transaction first.

    A round claims the pending rows of up to ``relay_batch`` transactions and sends them with up
    to ``relay_window`` messages in flight across transactions; a transaction's own messages go
    one after another, each once the previous one is confirmed, so their order holds. Rounds
    overlap: the next one claims while the current one sends its last messages, so the broker
    is not left idle while the relay waits for the database.

    Args:
        source: The service whose messages this relay sends (the envelope's source).
        store: The open store.
        send: Sends one row's message (through the bus's publish chain) and returns once the
            broker confirmed it.
        clock: Time for leases, backoffs and retention.
        settings: Pacing, batch size, window, backoff and retention.
    """

    def __init__(
        self, source: str, store: Store, send: SendRow, clock: Clock, settings: StoreSettings
    ) -> None:
        self.source = source
        self._store = store
        self._send = send
        self._clock = clock
        self._settings = settings
        self._window = asyncio.Semaphore(settings.relay_window)
        self._wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False
        #: The latest send failure, ``None`` once a round succeeds.
        self.last_error: str | None = None

    def start(self) -> None:
        """Start polling (and cleaning up) in background tasks."""
        self._stopping = False
        self._stopped.clear()
        self._tasks = [
            asyncio.create_task(self._pump(), name="busline:outbox-relay"),
            asyncio.create_task(self._clean(), name="busline:outbox-cleanup"),
        ]

    def wake(self) -> None:
        """Poll now instead of after the interval (e.g. a dispatch just failed)."""
        self._wakeup.set()

    async def stop(self, grace_period: float = 10.0) -> None:
        """Finish the messages being sent (for up to ``grace_period`` seconds), then stop."""
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        self._stopping = True
        self._stopped.set()
        self._wakeup.set()
        _, pending = await asyncio.wait(tasks, timeout=grace_period)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> int:
        """Run one round: claim the due rows of up to ``relay_batch`` transactions and send
        them; return how many were sent.

        A failure is noted on its row (retried after a backoff) and holds back the rest of its
        transaction; no new message is started in the round after it, since the next one would
        most likely fail the same way (the broker is unreachable).
        """
        return await self._round(None)

    async def _round(self, tail: asyncio.Event | None) -> int:
        """One round; sets ``tail`` once few enough of its rows are left to start that the next
        round should claim now."""
        settings = self._settings
        now = self._clock.now()
        claiming = self._store.claim(
            self.source, now, settings.relay_batch, settings.dispatch_lease
        )
        async with claiming as claim:
            progress = _Progress(claim, now, tail, settings.relay_window)
            chains: dict[str, list[OutboxRow]] = {}
            for row in claim.rows:
                chains.setdefault(row.tx_id, []).append(row)
            queue = deque(chains.values())
            senders = min(settings.relay_window, len(queue))
            if senders == 1:
                await self._sender(progress, queue)
            elif senders:
                await asyncio.gather(*(self._sender(progress, queue) for _ in range(senders)))
            progress.finished()
        if claim.sent and not claim.failures:
            self._note_recovery(len(claim.sent))
        return len(claim.sent)

    async def _sender(self, progress: _Progress, chains: deque[list[OutboxRow]]) -> None:
        """Send the round's transactions one after another, each holding a place in the relay's
        window (one unconfirmed message at a time) until its last row is confirmed."""
        while chains:
            rows = chains.popleft()
            async with self._window:
                if not await self._send_chain(progress, rows):
                    return

    async def _send_chain(self, progress: _Progress, rows: list[OutboxRow]) -> bool:
        """Send one transaction's rows in order, each after the previous one is confirmed;
        ``False`` when the round must start nothing more (a failure, or stopping)."""
        claim, now = progress.claim, progress.now
        for row in rows:
            if self._stopping or claim.failures:
                return False
            progress.started()
            try:
                await self._send(row)
            except Exception as exc:
                error = describe(exc)
                claim.failures.append((row.id, error, now + self._backoff(row.attempts + 1)))
                self._note_failure(error, row)
                return False
            claim.sent.append(row.id)
        return True

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

    async def _pump(self) -> None:
        """Run rounds back to back, each starting when the previous one reaches its tail; at
        most two are open at once (the locks or leases they hold stay bounded)."""
        previous: asyncio.Task[int] | None = None
        current: asyncio.Task[int] | None = None
        try:
            while not self._stopping:
                tail = asyncio.Event()
                current = asyncio.create_task(self._guarded_round(tail))
                reached_tail = asyncio.create_task(tail.wait())
                await asyncio.wait({current, reached_tail}, return_when=asyncio.FIRST_COMPLETED)
                reached_tail.cancel()
                sent = [] if previous is None else [await previous]
                if current.done():
                    sent.append(current.result())
                    previous = None
                else:
                    previous = current
                current = None
                if 0 in sent:  # nothing was due, or everything failed: wait before claiming
                    await self._sleep(self._settings.relay_interval)
            if previous is not None:
                await previous
        finally:
            for task in (previous, current):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _guarded_round(self, tail: asyncio.Event) -> int:
        try:
            return await self._round(tail)
        except Exception:
            log.warning("outbox relay round failed; retrying", exc_info=True)
            return 0

    async def _clean(self) -> None:
        while not self._stopping:
            try:
                await self.purge()
            except Exception:
                log.warning("outbox cleanup failed; retrying later", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._settings.cleanup_interval)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        self._wakeup.clear()


class _Progress:
    """How far a round has got: tells the relay when to claim the next round.

    The next round claims once no more than half the round's rows (or a window's worth, if more)
    are still to start, which leaves it the time of those sends to claim.
    """

    __slots__ = ("_left", "_tail", "_threshold", "claim", "now")

    def __init__(self, claim: Claim, now: float, tail: asyncio.Event | None, window: int) -> None:
        self.claim = claim
        self.now = now
        self._tail = tail
        self._left = len(claim.rows)
        self._threshold = max(window, self._left // 2)
        self._check()

    def started(self) -> None:
        """One more row is being sent."""
        self._left -= 1
        self._check()

    def finished(self) -> None:
        """No more row of the round will start (sent, failed or stopping)."""
        self._left = 0
        self._check()

    def _check(self) -> None:
        # An empty claim never reaches its tail: the relay waits for the round to end, then
        # sleeps instead of claiming again at once.
        if self._tail is not None and self.claim.rows and self._left <= self._threshold:
            self._tail.set()


def describe(error: BaseException) -> str:
    """A one-line account of ``error`` for logs and the ``last_error`` column."""
    return f"{type(error).__name__}: {error}"[:2000]
