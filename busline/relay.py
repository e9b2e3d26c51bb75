"""The outbox relay: sends the committed outbox rows nobody sent, and cleans up old rows.

A bus normally sends a transaction's messages itself right after the commit. The relay is for the
rest: rows a crash left behind (taken over once their ``dispatch_lease`` has passed) and rows that
could not be sent because the broker was unreachable (retried with a backoff per row, up to
``relay_max_backoff``). It polls; on PostgreSQL several relays (one per bus instance) share the
work through row locks, so none sends a row another is sending. It sends many transactions'
messages at once (a window of unconfirmed publishes), each transaction's in order, and claims
the next rows while it sends, so the broker is never left waiting on the database. It keeps
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

#: Most claims a running relay holds at once: one sending, and the next ones claimed ahead so
#: that their rows are queued before the senders run out of work.
OPEN_CLAIMS = 3


class Relay:
    """Polls the store for due outbox rows and sends them, oldest transaction first.

    A round claims the pending rows of up to ``relay_batch`` transactions and queues each
    transaction as a chain. Up to ``relay_window`` senders take chains from that queue, oldest
    round first, so up to that many messages are in flight across transactions; a chain's
    messages go one after another, each once the previous one is confirmed, so a transaction's
    order holds. A round records its outcome once all its chains are done. While rounds send,
    the relay already claims the next ones (up to :data:`OPEN_CLAIMS` claims held at once), so
    the queue never runs dry while a claim waits for the database.

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
        #: Claimed chains not yet started, oldest round first.
        self._queue: deque[_Chain] = deque()
        self._senders: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False
        #: The latest send failure, ``None`` once a round succeeds.
        self.last_error: str | None = None
        #: Told the number of pending outbox messages after each cleanup (e.g. a metric).
        self.report_backlog: Callable[[int], None] | None = None

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
        for task in (*pending, *self._senders):
            task.cancel()
        for task in (*tasks, *self._senders):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> int:
        """Run one round: claim the due rows of up to ``relay_batch`` transactions and send
        them; return how many were sent.

        A failure is noted on its row (retried after a backoff) and holds back the rest of its
        transaction; no new message is started in the round after it, since the next one would
        most likely fail the same way (the broker is unreachable).
        """
        sent = await self._round(None)
        if not self._tasks:  # not running in the background: its senders are this round's
            await asyncio.gather(*self._senders)
        return sent

    async def _round(self, queued: asyncio.Event | None) -> int:
        """One round: claim, queue the claimed transactions as chains (then set ``queued``;
        an empty claim just returns), wait until every chain is done, record the outcome."""
        settings = self._settings
        now = self._clock.now()
        claiming = self._store.claim(
            self.source, now, settings.relay_batch, settings.dispatch_lease
        )
        async with claiming as claim:
            if not claim.rows:
                return 0
            chains: dict[str, list[OutboxRow]] = {}
            for row in claim.rows:
                chains.setdefault(row.tx_id, []).append(row)
            round_ = _Round(claim, now, len(chains))
            self._queue.extend(_Chain(round_, rows) for rows in chains.values())
            self._start_senders()
            if queued is not None:
                queued.set()
            try:
                await round_.done.wait()
            finally:
                # Cancelled (the relay stops): what is still queued is left to a later claim.
                round_.abandoned = True
        if claim.sent and not claim.failures:
            self._note_recovery(len(claim.sent))
        return len(claim.sent)

    def _start_senders(self) -> None:
        """Start senders until there is one per queued chain or the window is full."""
        wanted = min(self._settings.relay_window, len(self._senders) + len(self._queue))
        while len(self._senders) < wanted:
            task = asyncio.create_task(self._sender(), name="busline:outbox-relay-sender")
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _sender(self) -> None:
        """Send queued chains one after another until the queue is empty."""
        queue = self._queue
        while queue:
            chain = queue.popleft()
            try:
                if not chain.round.abandoned:
                    await self._send_chain(chain.round, chain.rows)
            finally:
                chain.round.chain_done()

    async def _send_chain(self, round_: _Round, rows: list[OutboxRow]) -> None:
        """Send one transaction's rows in order, each after the previous one is confirmed;
        stop at a failure in the round (this chain's or another's) or when the relay stops."""
        claim, now = round_.claim, round_.now
        for row in rows:
            if self._stopping or claim.failures or round_.abandoned:
                return
            try:
                await self._send(row)
            except Exception as exc:
                error = describe(exc)
                claim.failures.append((row.id, error, now + self._backoff(row.attempts + 1)))
                self._note_failure(error, row)
                return
            claim.sent.append(row.id)

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
        """Delete dispatched rows, inbox records and completed saga instances past their
        retention; return how many."""
        settings = self._settings
        now = self._clock.now()
        sagas_before = now - settings.saga_retention if settings.keeps_completed_sagas else None
        removed = 0
        while True:
            batch = await self._store.purge(
                now - settings.outbox_retention,
                now - settings.inbox_retention,
                PURGE_BATCH,
                sagas_before=sagas_before,
            )
            removed += batch
            if batch == 0:
                return removed

    async def _pump(self) -> None:
        """Claim rounds one after another, each as soon as the previous one's chains are
        queued, with at most :data:`OPEN_CLAIMS` held at once; sleep when a round found nothing
        to send (or sent nothing: the broker is down)."""
        rounds: deque[asyncio.Task[int]] = deque()
        try:
            while not self._stopping:
                queued = asyncio.Event()
                current = asyncio.create_task(self._guarded_round(queued))
                rounds.append(current)
                # Claims run one at a time: the next waits until this one's rows are queued.
                await _first_of(current, queued)
                idle = False
                for finished in [task for task in rounds if task.done()]:
                    rounds.remove(finished)
                    idle = idle or finished.result() == 0
                while len(rounds) >= OPEN_CLAIMS:
                    idle = await rounds.popleft() == 0 or idle
                if idle:
                    await self._sleep(self._settings.relay_interval)
            while rounds:
                await rounds.popleft()
        finally:
            for task in rounds:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _guarded_round(self, queued: asyncio.Event) -> int:
        try:
            return await self._round(queued)
        except Exception:
            log.warning("outbox relay round failed; retrying", exc_info=True)
            return 0

    async def _clean(self) -> None:
        while not self._stopping:
            try:
                await self.purge()
                if self.report_backlog is not None:
                    self.report_backlog((await self._store.stats(self._clock.now())).pending)
            except Exception:
                log.warning("outbox cleanup failed; retrying later", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._settings.cleanup_interval)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        self._wakeup.clear()


class _Round:
    """One claim being sent: done once each of its chains has been sent, failed or skipped."""

    __slots__ = ("abandoned", "chains", "claim", "done", "now")

    def __init__(self, claim: Claim, now: float, chains: int) -> None:
        self.claim = claim
        self.now = now
        self.chains = chains
        self.abandoned = False
        self.done = asyncio.Event()

    def chain_done(self) -> None:
        """One more of the round's chains is over."""
        self.chains -= 1
        if self.chains <= 0:
            self.done.set()


class _Chain:
    """One transaction's claimed rows, to be sent in order."""

    __slots__ = ("round", "rows")

    def __init__(self, round_: _Round, rows: list[OutboxRow]) -> None:
        self.round = round_
        self.rows = rows


async def _first_of(task: asyncio.Task[int], event: asyncio.Event) -> None:
    """Wait until ``task`` is done or ``event`` is set, whichever comes first."""
    waiter = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def describe(error: BaseException) -> str:
    """A one-line account of ``error`` for logs and the ``last_error`` column."""
    return f"{type(error).__name__}: {error}"[:2000]
