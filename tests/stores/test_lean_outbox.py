"""``outbox_retention=0``: sent rows are deleted at once instead of marked dispatched, on every
path that settles them (the committing bus, its group-committed marks, the relay), and nothing
else changes: what could not be sent stays until the relay sends it."""

from __future__ import annotations

from collections import Counter

import pytest

from busline import Context, StoreSettings
from tests.stores.db import count, run
from tests.stores.messages import ChargeCard, PlaceOrder, Step
from tests.support import eventually

LEAN = StoreSettings(outbox_retention=0, relay_interval=0.02, relay_max_backoff=0.1)


async def test_sent_rows_are_deleted_and_unsent_ones_wait_for_the_relay(make_store_bus, tables):
    web = make_store_bus("web", outage_switch=True, store_settings=LEAN)
    orders = make_store_bus("orders", store_settings=LEAN)
    billing = make_store_bus("billing", store_settings=LEAN)
    charged: Counter[str] = Counter()
    steps: list[tuple[str, int]] = []

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await run(ctx.db, "INSERT INTO orders (id) VALUES (?)", cmd.order_id)
        await ctx.send(ChargeCard(order_id=cmd.order_id))

    @billing.command_handler
    async def charge(cmd: ChargeCard, ctx: Context) -> None:
        charged[cmd.order_id] += 1

    @billing.command_handler(prefetch=1)  # one at a time, so handled order is sent order
    async def step(cmd: Step, ctx: Context) -> None:
        steps.append((cmd.batch, cmd.seq))

    async with web, orders, billing:
        # A handler's send: committed, sent, then its row deleted by the group-committed mark.
        await web.send(PlaceOrder(order_id="o-1"))
        await eventually(lambda: charged["o-1"] == 1, what="the charge")

        # A transaction that cannot be sent: its rows stay, with the error noted.
        web.transport.down = True
        async with web.transaction() as tx:
            for seq in range(3):
                await tx.send(Step(batch="outage", seq=seq))

        async def noted() -> bool:
            return await count(tables, "busline_outbox_transactions", "last_error IS NOT NULL") == 1

        await eventually(noted, what="the failure noted on the transaction")
        assert await count(tables, "busline_outbox") == 3

        # The broker is back: the relay sends them in order and deletes their rows.
        web.transport.down = False
        await eventually(lambda: len(steps) == 3, what="the relay to send the steps")

        async def empty() -> bool:
            rows = await count(tables, "busline_outbox")
            return rows + await count(tables, "busline_outbox_transactions") == 0

        await eventually(empty, what="every sent row deleted")
        stats = await web.storage.store.stats()
    assert steps == [("outage", 0), ("outage", 1), ("outage", 2)]
    assert charged == {"o-1": 1}
    assert (stats.pending, stats.dispatched) == (0, 0)


def test_outbox_retention_may_be_zero_but_not_negative():
    assert not StoreSettings(outbox_retention=0).keeps_sent_rows
    assert StoreSettings().keeps_sent_rows
    with pytest.raises(ValueError, match="outbox_retention"):
        StoreSettings(outbox_retention=-1)
