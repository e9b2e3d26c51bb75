"""The store's PostgreSQL restarts while every handler is busy inside its transaction."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.faults.env import FaultEnv
from tests.faults.ledger import DuplicateCounter, Effects, Result, consumer_bus, prepare, settle
from tests.faults.load import producer_bus, send_commands
from tests.faults.plain import ERROR_QUEUE, ready_count


async def pg_restart(env: FaultEnv) -> Result:
    """Scenario 3: ``pg_ctl stop -m fast`` and start of the consumer's store (the suite's own
    server; the long run keeps it down 5 s) while 32 handlers hold a transaction each (50 ms of
    work inside it). The transactions in flight fail; busline retries them (immediately, then
    delayed) until the database is back."""
    result = Result("PostgreSQL restart under busy handlers")
    count = 5_000 if env.long else 600
    url, store = await env.vhost(), await env.pg.new_database()
    await prepare(store)
    effects, keys = Effects(store), [f"k{i}" for i in range(count)]
    producer = producer_bus(url)
    consumer = consumer_bus(url, store, delay=0.05, shutdown_timeout=10)
    deadline = time.monotonic() + (300 if env.long else 120)
    with DuplicateCounter() as dups:
        async with consumer, producer, contextlib.AsyncExitStack() as stack:
            watcher = asyncio.create_task(effects.watch())
            stack.callback(watcher.cancel)
            sending = asyncio.create_task(
                send_commands(producer, keys, rate=300 if env.long else 150)
            )
            stack.callback(sending.cancel)
            back: float | None = None
            if await effects.wait_for(count // 3, deadline):
                began = time.monotonic()
                await env.pg.astop()
                if env.long:
                    await asyncio.sleep(5)  # the outage itself: five seconds without a database
                await env.pg.astart()
                back = await effects.mark()
                result.notes.append(f"database down {back - began:.1f} s")
            await asyncio.wait_for(sending, max(1.0, deadline - time.monotonic()))
            result.finished = await effects.wait_for(count, deadline)
            result.recovery = effects.resumed_after(back) if back else None
    await settle(result, effects, set(keys))
    result.absorbed = dups.count
    result.parked = await ready_count(url, ERROR_QUEUE)
    result.check("nothing parked", result.parked == 0)
    return result
