"""The run most scenarios share: a producer commits ``count`` commands through the outbox
(``bus.transaction()``), a consumer with the inbox applies them, and a fault strikes once a
third of them is committed. The fault is a coroutine returning the moment recovery is measured
from (the end of the fault, or its start for one busline must notice by itself)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from busline import Bus
from tests.faults.ledger import DuplicateCounter, Effects, Result, Work, consumer_bus, prepare
from tests.faults.ledger import settle as settle_effects
from tests.faults.plain import ERROR_QUEUE, ready_count, until

#: The fault: given the effects watch, it strikes and returns the moment recovery is measured
#: from (see :meth:`Effects.mark`).
Fault = Callable[[Effects], Awaitable[float]]


def producer_bus(url: str, store: str | None = None, **options: Any) -> Bus:
    """The bus that sends :class:`Work` (through the outbox when given a ``store``)."""
    options.setdefault("shutdown_timeout", 10)
    return Bus("faults-producer", url, store=store, sends=[Work], **options)


class OutboxLoad:
    """``workers`` tasks committing one command per transaction, keys ``k0`` .. ``k{count-1}``,
    paced at ``rate`` per second so that the load is still running when the fault strikes and
    after it ends (unpaced, a short run would be over before a broker finished stopping).

    A key is in :attr:`keys` once its transaction returned: committed, so busline owes it.
    """

    def __init__(self, producer: Bus, count: int, rate: float, workers: int = 8) -> None:
        self.producer = producer
        self.count = count
        self.rate = rate
        self.workers = workers
        self._start = 0.0
        self.keys: set[str] = set()
        #: the longest time one ``async with bus.transaction()`` held its caller
        self.longest_hold = 0.0

    async def run(self) -> None:
        self._start = time.monotonic()
        await asyncio.gather(*(self._worker(w) for w in range(self.workers)))

    async def _worker(self, worker: int) -> None:
        for i in range(worker, self.count, self.workers):
            key = f"k{i}"
            due = self._start + i / self.rate - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)  # pacing the load, not waiting for an event
            began = time.monotonic()
            async with self.producer.transaction() as tx:
                await tx.send(Work(key=key))
            self.longest_hold = max(self.longest_hold, time.monotonic() - began)
            self.keys.add(key)


async def outbox_run(
    result: Result,
    *,
    producer_url: str,
    consumer_url: str,
    store: str,
    count: int,
    fault: Fault,
    deadline_s: float,
    rate: float = 100.0,
    slack: int = 0,
    pause: bool = False,
    admin_url: str | None = None,
) -> Result:
    """Run the shared scenario and fill ``result``; never longer than ``deadline_s`` (plus
    shutdown). ``admin_url`` reads the error queue when the consumer's URL is a proxy's;
    ``slack``: see :meth:`Effects.resumed_after`; ``pause``: recovery is the longest pause in
    handling after the fault began (:meth:`Effects.longest_pause`)."""
    await prepare(store)
    effects = Effects(store)
    producer = producer_bus(producer_url, store)
    consumer = consumer_bus(consumer_url, store, shutdown_timeout=10)
    load = OutboxLoad(producer, count, rate)
    deadline = time.monotonic() + deadline_s
    with DuplicateCounter() as dups:
        async with contextlib.AsyncExitStack() as stack:
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            await producer.start()
            stack.push_async_callback(producer.stop)
            watcher = asyncio.create_task(effects.watch())
            stack.callback(watcher.cancel)
            sending = asyncio.create_task(load.run())
            stack.callback(sending.cancel)
            since: float | None = None
            if await until(lambda: len(load.keys) >= count // 3 or sending.done(), deadline):
                since = await fault(effects)
            sent = await _wait(sending, deadline)
            done = await effects.wait_for(count, deadline)
            result.finished = sent and done
            if not result.finished:
                result.notes.append(f"deadline {deadline_s:.0f} s passed")
            if since is not None and pause:
                result.recovery = effects.longest_pause(since)
            elif since is not None:
                result.recovery = effects.resumed_after(since, slack)
    await settle_effects(result, effects, load.keys)
    result.absorbed = dups.count
    result.parked = await ready_count(admin_url or consumer_url, ERROR_QUEUE)
    result.check("nothing parked", result.parked == 0)
    result.notes.append(f"longest transaction {load.longest_hold:.2f} s")
    return result


async def _wait(task: asyncio.Task[None], deadline: float) -> bool:
    """Wait for ``task`` until ``deadline``; False (task cancelled) when it did not finish."""
    try:
        await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        task.cancel()
        return False
    return True


async def send_commands(bus: Bus, keys: list[str], rate: float | None, workers: int = 16) -> None:
    """Send a command per key, paced at ``rate`` per second (None: as fast as confirmed)."""
    start = time.monotonic()

    async def worker(w: int) -> None:
        for i in range(w, len(keys), workers):
            if rate is not None and (due := start + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(due)  # pacing the load
            await bus.send(Work(key=keys[i]))

    await asyncio.gather(*(worker(w) for w in range(workers)))
