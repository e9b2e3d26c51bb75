"""The broker goes away: a restart under outbox load, and an outage while ``bus.transaction()``
blocks are committing."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.faults.env import FaultEnv
from tests.faults.ledger import DuplicateCounter, Effects, Result, Work, consumer_bus, prepare
from tests.faults.ledger import settle as settle_effects
from tests.faults.load import outbox_run, producer_bus
from tests.faults.plain import ERROR_QUEUE, ready_count

#: The bound the issue sets for how long a caller may be held after its commit.
HOLD_BOUND = 1.0


async def broker_restart(env: FaultEnv) -> Result:
    """Scenario 1: the broker restarts while senders commit through the outbox."""
    result = Result("broker restart under outbox load")
    url = await env.vhost()
    store = await env.pg.new_database()

    async def restart(effects: Effects) -> float:
        # The long run restarts the whole Erlang node (~6 s down); the short one only the
        # broker application (~2 s): to clients both are a restart with every connection lost.
        began = time.monotonic()
        await env.rabbit.arestart(fast=not env.long)
        back = await effects.mark()
        result.notes.append(f"broker down {back - began:.1f} s")
        return back

    count = 10_000 if env.long else 600
    return await outbox_run(
        result,
        producer_url=url,
        consumer_url=url,
        store=store,
        count=count,
        fault=restart,
        deadline_s=300 if env.long else 90,
        rate=250 if env.long else 100,
    )


async def transaction_hold(env: FaultEnv) -> Result:
    """Scenario 9: with the broker down, how long does ``async with bus.transaction()`` hold
    its caller after the commit? The relay sends the messages once the broker is back."""
    result = Result("broker outage during bus.transaction()")
    count = 20 if env.long else 5
    # The long run keeps busline's default send timeout (30 s); the short one 5 s, so CI sees
    # the defect in seconds rather than half a minute.
    send_timeout = 30.0 if env.long else 5.0
    url = await env.vhost()
    store = await env.pg.new_database()
    await prepare(store)
    effects = Effects(store)
    producer = producer_bus(url, store, send_timeout=send_timeout)
    consumer = consumer_bus(url, store, shutdown_timeout=10)
    holds: list[float] = []

    async def one(key: str) -> None:
        began = time.monotonic()
        async with producer.transaction() as tx:
            await tx.send(Work(key=key))
        holds.append(time.monotonic() - began)

    keys = {f"k{i}" for i in range(count)}
    with DuplicateCounter() as dups:
        async with consumer, producer, contextlib.AsyncExitStack() as stack:
            watcher = asyncio.create_task(effects.watch())
            stack.callback(watcher.cancel)
            await one("warm-up")  # connected and declared before the outage
            await env.rabbit.astop(fast=True)
            try:
                bound = 3 * send_timeout + 30
                tasks = [asyncio.create_task(one(k)) for k in sorted(keys)]
                _, pending = await asyncio.wait(tasks, timeout=bound)
                for task in pending:
                    task.cancel()
                if pending:
                    result.notes.append(f"{len(pending)} still held after {bound:.0f} s")
            finally:
                # Measured from the start command: the relay may deliver before it returns.
                back = await effects.mark()
                await env.rabbit.astart()
            result.finished = await effects.wait_for(count + 1, back + 120)
            result.recovery = effects.resumed_after(back)
    await settle_effects(result, effects, keys)
    result.absorbed = dups.count
    result.parked = await ready_count(url, ERROR_QUEUE)
    held_all = len(holds) > count  # every block returned (holds[0] is the warm-up)
    longest = max(holds[1:], default=0.0) if held_all else 3 * send_timeout + 30
    prefix = "" if held_all else "at least "
    result.notes.append(
        f"caller held {prefix}{longest:.2f} s (send_timeout {send_timeout:.0f} s, "
        f"{count} transactions at once)"
    )
    result.notes.append("recovery counted from the broker's start command (includes its boot)")
    result.check("nothing parked", result.parked == 0)
    result.check(f"transaction returns within {HOLD_BOUND:.0f} s", longest < HOLD_BOUND)
    return result
