"""The saga contract on both stores and both transports: start, correlate, wait for two facts
within a deadline, compensate newest first, and keep every step exactly once."""

from __future__ import annotations

import pytest

from busline import NoStoreError, RegistrationError, Saga, StoreSettings
from busline.testing import VirtualClock
from tests.sagas.messages import (
    Fulfilment,
    OrderPlaced,
    PaymentOverdue,
    PaymentReceived,
    StockReserved,
    StockShort,
)
from tests.sagas.shop import DEADLINE, World, fulfilment_saga
from tests.stores.db import query
from tests.support import eventually

FAST = StoreSettings(relay_interval=0.02, relay_max_backoff=0.1)


def shop(make_store_bus, clock: VirtualClock, saga: Saga | None = None):
    orders = make_store_bus("orders", clock=clock, store_settings=FAST)
    orders.add_saga(saga or fulfilment_saga())
    world = World(make_store_bus("world", clock=clock, store_settings=FAST))
    return orders, world


async def instances(bus) -> list:
    return await bus.storage.store.list_sagas(saga="sagas.fulfilment")


@pytest.mark.parametrize("first", ["payment", "stock"])
async def test_both_facts_in_either_order_ship_once_and_end_it(make_store_bus, first):
    clock = VirtualClock()
    orders, world = shop(make_store_bus, clock)
    facts = [PaymentReceived(order_id="o-1"), StockReserved(order_id="o-1")]
    if first == "stock":
        facts.reverse()
    async with orders, world.bus:
        await orders.publish(OrderPlaced(order_id="o-1"))
        await world.wait_for(("ReserveStock", "o-1"), ("RetrievePayment", "o-1"))
        for fact in facts:
            await orders.publish(fact)
        await world.wait_for(("ShipOrder", "o-1"))
        await eventually(lambda: _empty(orders), what="the instance deleted on completion")
        # The deadline passes after completion: its timeout was dropped with the instance.
        assert await orders.storage.store.scheduled("sagas.fulfilment/") == []
        clock.advance(DEADLINE + 1)
        await orders.publish(OrderPlaced(order_id="o-2"))
        await world.wait_for(("ReserveStock", "o-2"))
    assert world.got[("ShipOrder", "o-1")] == 1
    assert world.got[("RefundPayment", "o-1")] == world.got[("ReleaseStock", "o-1")] == 0


async def _empty(bus) -> bool:
    return [r.key for r in await instances(bus)] in ([], ["o-2"])


async def test_one_fact_and_the_deadline_compensate_newest_first_once(make_store_bus, tables):
    clock = VirtualClock()
    orders, world = shop(make_store_bus, clock)
    async with orders, world.bus:
        await orders.publish(OrderPlaced(order_id="o-1"))
        await world.wait_for(("ReserveStock", "o-1"), ("RetrievePayment", "o-1"))
        await orders.publish(PaymentReceived(order_id="o-1"))
        await eventually(lambda: _paid(orders), what="the payment recorded")
        [pending] = await orders.storage.store.scheduled("sagas.fulfilment/o-1/")
        assert pending.message_type == "sagas.PaymentOverdue"
        clock.advance(DEADLINE + 1)
        await world.wait_for(("RefundPayment", "o-1"), ("ReleaseStock", "o-1"))
        await eventually(lambda: _gone(orders), what="the instance ended")
        # A late fact finds no instance and is ignored: nothing ships.
        await orders.publish(StockReserved(order_id="o-1"))
        await orders.publish(OrderPlaced(order_id="o-3"))
        await world.wait_for(("ReserveStock", "o-3"))
    assert world.got[("ShipOrder", "o-1")] == 0
    assert world.got[("RefundPayment", "o-1")] == world.got[("ReleaseStock", "o-1")] == 1
    # Newest first: the refund (recorded second) was written before the release.
    rows = await query(
        tables,
        "SELECT message_type FROM busline_outbox WHERE message_type IN (?, ?) ORDER BY id",
        "sagas.RefundPayment",
        "sagas.ReleaseStock",
    )
    assert [r[0] for r in rows] == ["sagas.RefundPayment", "sagas.ReleaseStock"]


async def _paid(bus) -> bool:
    import msgspec

    found = await instances(bus)
    return bool(found) and msgspec.json.decode(found[0].state, type=Fulfilment).paid


async def _gone(bus) -> bool:
    return all(r.key != "o-1" for r in await instances(bus))


async def test_a_short_stock_compensates_what_was_done(make_store_bus):
    orders, world = shop(make_store_bus, VirtualClock())
    async with orders, world.bus:
        await orders.publish(OrderPlaced(order_id="o-1"))
        await world.wait_for(("ReserveStock", "o-1"))
        await orders.publish(StockShort(order_id="o-1"))
        await world.wait_for(("RefundPayment", "o-1"), ("ReleaseStock", "o-1"))
        await eventually(lambda: _gone(orders), what="the instance ended")
        assert await orders.storage.store.scheduled("sagas.fulfilment/o-1/") == []


async def test_a_duplicate_start_makes_one_instance_and_one_effect(make_store_bus):
    orders, world = shop(make_store_bus, VirtualClock())
    async with orders, world.bus:
        for _ in range(3):
            await orders.publish(OrderPlaced(order_id="o-1"), idempotency_key="place-o-1")
        await orders.publish(OrderPlaced(order_id="o-2"))
        await world.wait_for(("ReserveStock", "o-1"), ("ReserveStock", "o-2"))
        await eventually(lambda: _two(orders), what="two instances")
        versions = {r.key: r.version for r in await instances(orders)}
    assert world.got[("ReserveStock", "o-1")] == 1
    assert versions == {"o-1": 1, "o-2": 1}


async def _two(bus) -> bool:
    return len(await instances(bus)) == 2


async def test_not_found_error_parks_the_message_with_the_reason(make_store_bus, bus_url):
    from tests.support import headers_of, take_from_queue

    orders, world = shop(make_store_bus, VirtualClock(), fulfilment_saga(not_found="error"))
    async with orders, world.bus:
        await orders.publish(PaymentReceived(order_id="nobody"))
        [parked] = await take_from_queue(bus_url, "busline.error", 1)
    headers = headers_of(parked)
    assert headers["busline-error-reason"] == "rejected"
    assert "no instance" in headers["busline-error-message"]


async def test_a_timeout_that_finds_its_instance_gone_is_dropped(make_store_bus, bus_url):
    from busline.saga_context import HEADER_SAGA_TIMEOUT

    orders, world = shop(make_store_bus, VirtualClock(), fulfilment_saga(not_found="error"))
    async with orders, world.bus:
        headers = {HEADER_SAGA_TIMEOUT: "sagas.fulfilment/ghost/sagas.PaymentOverdue"}
        await orders.send(PaymentOverdue(order_id="ghost"), headers=headers)
        await orders.publish(OrderPlaced(order_id="o-9"))
        await world.wait_for(("ReserveStock", "o-9"))
        # Handled in order on one queue: the timeout went before, and created nothing.
        assert [r.key for r in await instances(orders)] == ["o-9"]
    assert world.got[("RefundPayment", "ghost")] == 0


def test_a_saga_needs_a_store_and_a_buildable_state():
    import msgspec

    from busline import Bus

    with pytest.raises(NoStoreError, match="store"):
        Bus("orders").add_saga(fulfilment_saga())

    class NeedsMore(msgspec.Struct):
        order_id: str
        customer: str

    with pytest.raises(RegistrationError, match="customer"):
        Saga("x", state=NeedsMore, key="order_id")
    saga = Saga("y", state=Fulfilment, key="order_id")
    with pytest.raises(RegistrationError, match="no field 'order'"):
        saga.starts(OrderPlaced, by="order")
