"""A handler's writes, inbox record and outgoing messages commit together or not at all.
Both stores, both transports."""

from __future__ import annotations

import asyncio

import pytest

from busline import NO_RETRIES, Bus, Context, Middleware, NoStoreError
from busline.testing import memory_url
from tests.stores.db import Db, count, query, run
from tests.stores.messages import ChargeCard, PlaceOrder
from tests.support import eventually, take_from_queue


class Gate(Middleware):
    """Holds every publish until opened (the moment between commit and send)."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    async def on_publish(self, out, call_next):
        if out.envelope.message_type == ChargeCard.__wire_name__:
            self.reached.set()
            await self.opened.wait()
        await call_next(out)


async def test_business_inbox_and_outbox_rows_appear_together(make_store_bus, tables):
    gate = Gate()
    orders = make_store_bus("orders", middleware=[gate])
    billing = make_store_bus("billing")
    in_handler = asyncio.Event()
    finish = asyncio.Event()
    charged: list[str] = []

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await run(ctx.db, "INSERT INTO orders (id) VALUES (?)", cmd.order_id)
        await ctx.send(ChargeCard(order_id=cmd.order_id))
        in_handler.set()
        await finish.wait()

    @billing.command_handler
    async def charge(cmd: ChargeCard, ctx: Context) -> None:
        charged.append(cmd.order_id)

    async with Db(tables) as db:

        async def visible() -> tuple[int, int, int]:
            return (
                await db.count("orders"),
                await db.count("busline_inbox", "consumer = ?", "stores.PlaceOrder"),
                await db.count("busline_outbox", "message_type = ?", "stores.ChargeCard"),
            )

        async with orders, billing:
            await orders.send(PlaceOrder(order_id="o-1"))
            await asyncio.wait_for(in_handler.wait(), 10)
            assert await visible() == (0, 0, 0), "uncommitted rows are visible"
            finish.set()
            await asyncio.wait_for(gate.reached.wait(), 10)
            # Committed, not yet sent: all three rows, the outbox row still pending.
            assert await visible() == (1, 1, 1)
            assert await db.pending() == 1
            assert charged == []
            gate.opened.set()
            await eventually(lambda: charged == ["o-1"], what="the charge handled")

            async def marked() -> bool:
                return await db.pending() == 0

            await eventually(marked, what="the outbox row marked dispatched")


async def test_handler_that_raises_after_its_write_leaves_nothing(make_store_bus, tables, bus_url):
    orders = make_store_bus("orders", retry=NO_RETRIES)
    billing = make_store_bus("billing")
    charged: list[str] = []

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await run(ctx.db, "INSERT INTO orders (id) VALUES (?)", cmd.order_id)
        await ctx.send(ChargeCard(order_id=cmd.order_id))
        raise RuntimeError("payment provider said no")

    @billing.command_handler
    async def charge(cmd: ChargeCard) -> None:
        charged.append(cmd.order_id)

    async with orders, billing:
        message_id = await orders.send(PlaceOrder(order_id="o-2"))
        [parked] = await take_from_queue(bus_url, "busline.error", 1)
        assert parked.message_id == message_id
    assert await count(tables, "orders") == 0
    assert await count(tables, "busline_inbox") == 0
    assert await count(tables, "busline_outbox") == 0
    assert charged == []


async def test_retried_handler_commits_only_the_successful_attempt(make_store_bus, tables):
    orders = make_store_bus("orders")
    billing = make_store_bus("billing")
    attempts = 0
    charged: list[str] = []

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        nonlocal attempts
        attempts += 1
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "try", str(attempts))
        await ctx.send(ChargeCard(order_id=f"{cmd.order_id}-{attempts}"))
        if attempts < 3:
            raise ConnectionError("flaky")

    @billing.command_handler
    async def charge(cmd: ChargeCard) -> None:
        charged.append(cmd.order_id)

    async with orders, billing:
        await orders.send(PlaceOrder(order_id="o"))
        await eventually(lambda: charged == ["o-3"], what="the third attempt's charge")
    assert await query(tables, "SELECT value FROM effects") == [("3",)]
    assert await count(tables, "busline_outbox") == 1


async def test_ctx_db_is_the_transaction_connection(make_store_bus, tables, store_url):
    bus = make_store_bus("orders")
    seen: list[object] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        seen.append(ctx.db)

    async with bus:
        await bus.send(PlaceOrder(order_id="o"))
        await eventually(lambda: len(seen) == 1, what="handled")
    if store_url.startswith("sqlite"):
        import aiosqlite

        assert isinstance(seen[0], aiosqlite.Connection)
    else:
        import asyncpg

        assert isinstance(seen[0], asyncpg.Connection | asyncpg.pool.PoolConnectionProxy)


async def test_without_a_store_ctx_db_and_transactions_say_what_is_missing():
    bus = Bus("orders", memory_url())
    errors: list[BaseException] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        try:
            ctx.db  # noqa: B018
        except NoStoreError as exc:
            errors.append(exc)

    async with bus:
        with pytest.raises(NoStoreError, match="store="):
            bus.transaction()
        await bus.send(PlaceOrder(order_id="o"))
        await eventually(lambda: len(errors) == 1, what="handled")
    assert "store=" in str(errors[0])


def test_store_settings_need_a_store():
    from busline import StoreSettings

    with pytest.raises(ValueError, match="store="):
        Bus("orders", store_settings=StoreSettings())
    with pytest.raises(ValueError, match="known schemes"):
        Bus("orders", store="mongodb://x")
