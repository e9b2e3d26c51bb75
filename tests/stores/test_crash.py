"""Crash injection: the process dies after the commit and before (or just after) the publish.
The relay of the next instance publishes what was left, the redelivered incoming message is
recognised as done, and the consumer applies its effect exactly once. Both stores, both
transports. A virtual clock lets the relay's lease run out without waiting for it."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from busline import Context, Middleware
from busline.testing import VirtualClock
from tests.stores.db import count, pending, query, run
from tests.stores.messages import ChargeCard, PlaceOrder
from tests.support import eventually


class Freeze(Middleware):
    """The process stops dead at a point of the publish of ChargeCard: ``before`` the broker
    gets it, or ``after`` it was confirmed but before the outbox row is marked."""

    def __init__(self, point: str) -> None:
        self.point = point
        self.frozen = asyncio.Event()

    async def on_publish(self, out, call_next):
        if out.envelope.message_type != ChargeCard.__wire_name__:
            await call_next(out)
            return
        if self.point == "after":
            await call_next(out)
        self.frozen.set()
        await asyncio.Event().wait()  # never returns: the stop() below cancels it


@pytest.mark.parametrize("point", ["before", "after"])
async def test_crash_between_commit_and_publish_loses_nothing_and_repeats_nothing(
    make_store_bus, tables, point
):
    clock = VirtualClock()
    freeze = Freeze(point)
    # The first instance of the order service: it will "die" in the middle of its publish.
    doomed = make_store_bus("orders", clock=clock, middleware=[freeze], shutdown_timeout=0.2)
    billing = make_store_bus("billing", clock=clock, outage_switch=True)
    placed: Counter[str] = Counter()
    charged: Counter[str] = Counter()

    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        placed[cmd.order_id] += 1
        await run(ctx.db, "INSERT INTO orders (id) VALUES (?)", cmd.order_id)
        await ctx.send(ChargeCard(order_id=cmd.order_id))

    @billing.command_handler
    async def charge(cmd: ChargeCard, ctx: Context) -> None:
        charged[cmd.order_id] += 1
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "charge", cmd.order_id)

    doomed.command_handler(PlaceOrder)(place)
    await billing.start()
    await doomed.start()
    await doomed.send(PlaceOrder(order_id="o-1"))
    await asyncio.wait_for(freeze.frozen.wait(), 10)
    # Committed: the order and its pending outbox row are in the database.
    assert await count(tables, "orders") == 1
    assert await pending(tables) == 1
    await doomed.stop()  # the crash: the handler is cancelled mid-publish, nothing is acked

    # A new instance of the order service comes up after the dispatch lease has run out.
    clock.advance(31)
    # prefetch=1: the redelivered PlaceOrder is settled before the marker below is handled.
    survivor = make_store_bus("orders", clock=clock, prefetch=1)
    survivor.command_handler(PlaceOrder)(place)
    await survivor.start()

    async def done() -> bool:
        return (
            await pending(tables) == 0
            and await count(tables, "effects") >= 1
            and await count(tables, "busline_inbox", "consumer = ?", "stores.PlaceOrder") == 1
        )

    await eventually(done, what="the relay to send the left-behind message")
    # The redelivered PlaceOrder is acked as a duplicate; a marker proves it was settled.
    await survivor.send(PlaceOrder(order_id="marker"))

    async def marker_charged() -> bool:
        return await count(tables, "effects", "value = ?", "marker") == 1

    await eventually(marker_charged, what="the marker charged")

    assert placed["o-1"] == 1, "the order handler ran twice"
    assert charged["o-1"] == 1, "the charge was applied twice"
    assert await query(tables, "SELECT value FROM effects ORDER BY value") == [
        ("marker",),
        ("o-1",),
    ]
    # Crashing after the broker confirmed means the relay sends it again: the consumer got the
    # same message twice and its inbox turned the second into a no-op.
    [(charge_id,), _marker] = await query(
        tables,
        "SELECT message_id FROM busline_outbox WHERE message_type = ? ORDER BY id",
        "stores.ChargeCard",
    )
    assert billing.transport.delivered[charge_id] == (2 if point == "after" else 1)
