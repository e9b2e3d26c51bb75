"""bus.transaction(): atomic writes and sends outside a handler, also while the broker is down.
Both stores, both transports."""

from __future__ import annotations

from collections import Counter

import pytest

from busline import Context, NestedTransactionError, StoreError
from tests.stores.db import Db, count, pending, query, run
from tests.stores.messages import ChargeCard, OrderPlaced, PlaceOrder, Step
from tests.support import eventually


async def test_writes_and_sends_commit_together(make_store_bus, tables):
    web = make_store_bus("web")
    billing = make_store_bus("billing")
    got: list[tuple[str, str, str]] = []

    @billing.command_handler
    async def charge(cmd: ChargeCard, ctx: Context) -> None:
        got.append((cmd.order_id, ctx.idempotency_key, ctx.envelope.headers.get("tenant", "")))

    async with web, billing:
        async with web.transaction() as tx:
            await run(tx.db, "INSERT INTO orders (id) VALUES (?)", "o-1")
            message_id = await tx.send(
                ChargeCard(order_id="o-1"), idempotency_key="charge-o-1", headers={"tenant": "t"}
            )
            await tx.publish(OrderPlaced(order_id="o-1"))  # no subscriber: fine
        await eventually(lambda: len(got) == 1, what="the charge handled")
    assert got == [("o-1", "charge-o-1", "t")]
    assert await count(tables, "orders") == 1
    rows = await query(
        tables,
        "SELECT message_id, position FROM busline_outbox ORDER BY position",
    )
    assert rows[0][:2] == (message_id, 0)
    assert [row[1] for row in rows] == [0, 1]


async def test_a_block_that_raises_keeps_and_sends_nothing(make_store_bus, tables):
    web = make_store_bus("web")
    billing = make_store_bus("billing")
    got: list[str] = []

    @billing.command_handler
    async def charge(cmd: ChargeCard) -> None:
        got.append(cmd.order_id)

    async with web, billing:
        with pytest.raises(ValueError, match="validation"):
            async with web.transaction() as tx:
                await run(tx.db, "INSERT INTO orders (id) VALUES (?)", "bad")
                await tx.send(ChargeCard(order_id="bad"))
                raise ValueError("validation failed")
        async with web.transaction() as tx:
            await tx.send(ChargeCard(order_id="good"))
        await eventually(lambda: got == ["good"], what="only the good charge")
        with pytest.raises(StoreError, match="over"):
            await tx.send(ChargeCard(order_id="late"))
    assert await count(tables, "orders") == 0
    assert await count(tables, "busline_outbox") == 1


async def test_a_transaction_inside_a_handler_is_refused_clearly(make_store_bus, tables):
    bus = make_store_bus("orders")
    errors: list[BaseException] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        try:
            async with bus.transaction():
                pass
        except NestedTransactionError as exc:
            errors.append(exc)

    async with bus:
        await bus.send(PlaceOrder(order_id="o"))
        await eventually(lambda: len(errors) == 1, what="handled")
    assert "ctx.db" in str(errors[0])


async def test_commits_while_the_broker_is_down_and_sends_when_it_is_back(make_store_bus, tables):
    web = make_store_bus("web", outage_switch=True)
    orders = make_store_bus("orders", outage_switch=True)
    billing = make_store_bus("billing")
    charged: Counter[str] = Counter()
    placed: list[str] = []

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        placed.append(cmd.order_id)
        await run(ctx.db, "INSERT INTO orders (id) VALUES (?)", cmd.order_id)
        await ctx.send(ChargeCard(order_id=cmd.order_id))

    @billing.command_handler
    async def charge(cmd: ChargeCard, ctx: Context) -> None:
        charged[cmd.order_id] += 1
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "charge", cmd.order_id)

    async with web, orders, billing:
        await web.send(PlaceOrder(order_id="from-handler"))  # before the outage
        await eventually(lambda: placed == ["from-handler"], what="the order handled")
        await eventually(lambda: charged["from-handler"] == 1, what="its charge")
        web.transport.down = orders.transport.down = True
        async with web.transaction() as tx:  # commits although nothing can be sent
            await run(tx.db, "INSERT INTO orders (id) VALUES (?)", "from-web")
            await tx.send(ChargeCard(order_id="from-web"))
        # A handler commits too: it consumes, writes, and its ChargeCard waits in the outbox.
        await billing.send(PlaceOrder(order_id="during-outage"))
        await eventually(lambda: "during-outage" in placed, what="the handler to run")
        async with Db(tables) as db:

            async def noted() -> bool:
                failed = await db.count(
                    "busline_outbox_transactions", "last_error LIKE ?", "%outage%"
                )
                return failed == 2

            await eventually(noted, what="the failed attempts noted on the transactions")
            assert await db.count("orders") == 3
            assert await db.pending() == 2
        stats = await web.storage.store.stats()
        assert (stats.pending, stats.failing) == (2, 2)
        assert "outage" in (stats.last_error or "")
        assert web.transport.refused >= 1
        assert charged["from-web"] == charged["during-outage"] == 0

        web.transport.down = orders.transport.down = False
        await eventually(
            lambda: charged["from-web"] == charged["during-outage"] == 1,
            what="the relays to send them",
        )

        async def drained() -> bool:
            return await pending(tables) == 0

        await eventually(drained, what="the outbox drained")
    assert charged == {"from-handler": 1, "from-web": 1, "during-outage": 1}
    assert await count(tables, "effects") == 3


async def test_a_large_transaction_commits_and_sends_every_message_in_order(make_store_bus, tables):
    # More messages than PostgreSQL's single-statement insert takes: the other path.
    web = make_store_bus("web")
    worker = make_store_bus("worker")
    steps: list[int] = []

    @worker.command_handler(prefetch=1)  # one at a time, so handled order is sent order
    async def step(cmd: Step) -> None:
        steps.append(cmd.seq)

    async with web, worker:
        async with web.transaction() as tx:
            for seq in range(40):
                await tx.send(Step(batch="large", seq=seq))
        assert await count(tables, "busline_outbox") == 40
        await eventually(lambda: len(steps) == 40, what="every step handled")

        async def marked() -> bool:
            return await pending(tables) == 0

        await eventually(marked, what="the transaction marked dispatched")
    assert steps == list(range(40))
