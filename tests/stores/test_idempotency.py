"""Idempotency: duplicates (redelivered, or re-sent with the same key) have their effect once.
Both stores, both transports; plus the in-memory window for buses without a store."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from busline import Bus, Context, Envelope, MemoryDeduplication, RetryPolicy, StoreSettings
from busline.envelope import new_message_id
from busline.testing import VirtualClock, memory_url
from tests.stores.db import count, pending, query, run
from tests.stores.messages import OrderPlaced, PlaceOrder
from tests.support import eventually


def copy_of(message_id: str, order_id: str, key: str | None = None) -> Envelope:
    body = f'{{"order_id":"{order_id}"}}'.encode()
    return Envelope(message_id, "stores.PlaceOrder", body, message_id, message_id, None, key)


async def test_the_same_message_delivered_twice_has_its_effect_once(make_store_bus, tables):
    bus = make_store_bus("orders")
    calls: Counter[str] = Counter()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        calls[cmd.order_id] += 1
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "order", cmd.order_id)

    async with bus:
        assert bus.transport is not None
        duplicate = copy_of(new_message_id(), "o-1")
        await bus.transport.send("stores.PlaceOrder", duplicate)
        await bus.transport.send("stores.PlaceOrder", duplicate.copy())
        await bus.send(PlaceOrder(order_id="after"))  # handled last: the copies are settled

        async def all_settled() -> bool:
            return calls["after"] == 1 and await count(tables, "busline_inbox") == 2

        await eventually(all_settled, what="both copies and the marker settled")
    assert calls["o-1"] == 1
    assert await query(tables, "SELECT value FROM effects ORDER BY value") == [("after",), ("o-1",)]


async def test_resending_with_the_same_idempotency_key_has_its_effect_once(make_store_bus, tables):
    bus = make_store_bus("orders")
    seen: list[tuple[str, str]] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        seen.append((cmd.order_id, ctx.idempotency_key))
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "order", cmd.order_id)

    async with bus:
        first = await bus.send(PlaceOrder(order_id="o-1"), idempotency_key="checkout-42")
        second = await bus.send(PlaceOrder(order_id="o-1"), idempotency_key="checkout-42")
        await bus.send(PlaceOrder(order_id="o-2"))
        assert first != second
        await eventually(
            lambda: any(order == "o-2" for order, _ in seen), what="the next order handled"
        )

        async def settled() -> bool:
            return await count(tables, "busline_inbox") == 2

        await eventually(settled, what="inbox records")
    assert [order for order, _ in seen].count("o-1") == 1
    assert ("o-1", "checkout-42") in seen
    assert await count(tables, "effects") == 2
    keys = await query(tables, "SELECT idempotency_key FROM busline_inbox ORDER BY 1")
    assert ("checkout-42",) in keys


async def test_each_subscriber_of_an_event_applies_it_once(make_store_bus, tables):
    bus = make_store_bus("billing")
    applied: Counter[str] = Counter()

    @bus.event_subscriber(name="invoice")
    async def invoice(evt: OrderPlaced, ctx: Context) -> None:
        applied["invoice"] += 1
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "invoice", "x")

    @bus.event_subscriber(name="ledger")
    async def ledger(evt: OrderPlaced, ctx: Context) -> None:
        applied["ledger"] += 1
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "ledger", "x")

    async with bus:
        await bus.publish(OrderPlaced(order_id="o"), idempotency_key="placed-o")
        await bus.publish(OrderPlaced(order_id="o"), idempotency_key="placed-o")

        async def settled() -> bool:
            return await count(tables, "busline_inbox") == 2 and sum(applied.values()) == 2

        await eventually(settled, what="each subscriber's inbox record")
        await bus.publish(OrderPlaced(order_id="o"), idempotency_key="marker")
        await eventually(lambda: sum(applied.values()) == 4, what="the marker event")
    assert applied == {"invoice": 2, "ledger": 2}  # "placed-o" once each, "marker" once each
    assert await count(tables, "effects") == 4


async def test_copies_handled_concurrently_apply_once(make_store_bus, tables):
    bus = make_store_bus("orders", prefetch=4)
    entered = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        nonlocal calls
        calls += 1
        entered.set()
        await run(ctx.db, "INSERT INTO effects (name, value) VALUES (?, ?)", "order", cmd.order_id)
        await release.wait()

    async with bus:
        assert bus.transport is not None
        duplicate = copy_of(new_message_id(), "o-1")
        for _ in range(3):
            await bus.transport.send("stores.PlaceOrder", duplicate.copy())
        await asyncio.wait_for(entered.wait(), 10)
        release.set()

        async def settled() -> bool:
            return await count(tables, "busline_inbox") == 1 and await count(tables, "effects") == 1

        await eventually(settled, what="the first copy committed")
        await bus.send(PlaceOrder(order_id="marker"))
        await eventually(lambda: calls == 2, what="the marker handled")
    assert await count(tables, "effects") == 2


async def test_inbox_retention_must_outlast_the_retry_window(make_store_bus):
    bus = make_store_bus(
        "orders",
        retry=RetryPolicy(delays=(60.0, 600.0)),
        store_settings=StoreSettings(inbox_retention=300.0),
    )

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        pass

    with pytest.raises(ValueError, match=r"inbox_retention \(300s\).*retry window \(660s\)"):
        await bus.start()


async def test_expired_records_and_dispatched_rows_are_purged(make_store_bus, tables):
    clock = VirtualClock()
    settings = StoreSettings(inbox_retention=3600.0, outbox_retention=600.0)
    bus = make_store_bus("orders", clock=clock, store_settings=settings)
    handled: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        handled.append(cmd.order_id)

    async with bus:
        async with bus.transaction() as tx:
            await tx.send(PlaceOrder(order_id="o-1"))
        await eventually(lambda: handled == ["o-1"], what="handled")
        assert bus.storage is not None

        async def sizes() -> tuple[int, int]:
            return await count(tables, "busline_outbox"), await count(tables, "busline_inbox")

        async def recorded() -> bool:
            return await sizes() == (1, 1) and await pending(tables) == 0

        await eventually(recorded, what="rows recorded and the transaction marked dispatched")
        clock.advance(601)
        assert await bus.storage.purge() == 1  # the dispatched outbox row
        assert await sizes() == (0, 1)
        assert await count(tables, "busline_outbox_transactions") == 0
        clock.advance(3000)
        assert await bus.storage.purge() == 1  # the inbox record
        assert await sizes() == (0, 0)


async def test_memory_deduplication_skips_recent_keys_without_a_store():
    clock = VirtualClock()
    dedup = MemoryDeduplication(max_keys=100, window=60.0, clock=clock)
    bus = Bus("orders", memory_url(), middleware=[dedup], clock=clock)
    handled: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.append(cmd.order_id)

    async with bus:
        await bus.send(PlaceOrder(order_id="a"), idempotency_key="k")
        await bus.send(PlaceOrder(order_id="b"), idempotency_key="k")
        await bus.send(PlaceOrder(order_id="c"))
        await eventually(lambda: "c" in handled, what="handled")
        clock.advance(61)  # the window has passed: the key counts as new again
        await bus.send(PlaceOrder(order_id="d"), idempotency_key="k")
        await eventually(lambda: "d" in handled, what="handled after the window")
    assert handled == ["a", "c", "d"]


def test_memory_deduplication_is_bounded():
    dedup = MemoryDeduplication(max_keys=2, window=60.0)
    for key in ("a", "b", "c"):
        dedup.remember("q", key, 0.0)
    assert not dedup.seen("q", "a", 1.0)
    assert dedup.seen("q", "b", 1.0)
    assert dedup.seen("q", "c", 1.0)
