"""Shared commits through the bus, both stores, both transports: a message whose handler breaks
the transaction it shares with others is parked on its own; its neighbours, run again at once
and alone without counting it, each have their effect exactly once, even with no retries."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from busline import (
    Bus,
    Context,
    GroupCommitError,
    Middleware,
    Outcome,
    OutcomeKind,
    RetryPolicy,
    StoreSettings,
)
from tests.stores.db import count, query, run
from tests.stores.messages import PlaceOrder
from tests.support import eventually

#: Everyone joins a running group (the expected wait never looks too long), so that the bad
#: message shares its transaction with good ones.
GROUPED = StoreSettings(relay_interval=0.02, relay_max_backoff=0.1, group_wait=60.0)


class Outcomes(Middleware):
    """Records what the bus reports."""

    def __init__(self) -> None:
        self.seen: list[Outcome] = []

    def on_outcome(self, outcome: Outcome) -> None:
        self.seen.append(outcome)


async def break_the_transaction(ctx: Context, url: str) -> None:
    """What a careless handler does: end the transaction under busline (SQLite), or catch an SQL
    error and go on, leaving it aborted (PostgreSQL)."""
    if url.startswith("sqlite"):
        await ctx.db.execute("COMMIT")
    else:
        with contextlib.suppress(Exception):
            await ctx.db.execute("SELECT 1 / 0")


async def test_one_broken_transaction_parks_only_its_own_message(make_store_bus, tables):
    outcomes = Outcomes()
    bus: Bus = make_store_bus(
        "orders",
        store_settings=GROUPED,
        retry=RetryPolicy(immediate=0, delays=()),
        middleware=[outcomes],
    )
    calls: Counter[str] = Counter()
    good = [f"o-{n}" for n in range(30)]
    # The first order holds its transaction until every order is sent: the others queue behind
    # it and share transactions, the bad one among them.
    all_sent = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        calls[cmd.order_id] += 1
        if cmd.order_id == good[0]:
            await all_sent.wait()
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "order", cmd.order_id)
        if cmd.order_id == "bad":
            await break_the_transaction(ctx, tables)

    async with bus:
        # The bad one right behind the first: in its transaction, whatever the group sizes.
        for order in [good[0], "bad", *good[1:]]:
            await bus.send(PlaceOrder(order_id=order))
        all_sent.set()

        async def settled() -> bool:
            handled = await count(tables, "effects", "value <> ?", "bad")
            parked = [o for o in outcomes.seen if o.kind is OutcomeKind.DEAD_LETTERED]
            return handled >= len(good) and len(parked) >= 1

        await eventually(settled, what="every good order handled and the bad one parked")
    effects = Counter(value for (value,) in await query(tables, "SELECT value FROM effects"))
    assert {order: effects[order] for order in good} == dict.fromkeys(good, 1)
    parked = [o for o in outcomes.seen if o.kind is OutcomeKind.DEAD_LETTERED]
    assert [o.envelope.message_type for o in parked] == ["stores.PlaceOrder"]
    assert calls["bad"] >= 1
    shared = [o for o in outcomes.seen if isinstance(o.error, GroupCommitError)]
    assert shared, "the bad message never shared a transaction: the test proved nothing"
