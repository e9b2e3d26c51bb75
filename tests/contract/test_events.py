"""Events: a copy per subscriber, competing instances within a subscriber. Every transport."""

from __future__ import annotations

import asyncio
from collections import Counter

from busline import Context
from tests.contract.messages import OrderPlaced
from tests.support import eventually


async def test_every_subscriber_gets_its_own_copy(make_bus):
    billing = make_bus("billing")
    shipping = make_bus("shipping")
    got: list[tuple[str, str]] = []

    @billing.event_subscriber
    async def on_placed(evt: OrderPlaced, ctx: Context) -> None:
        got.append(("billing.on_placed", evt.order_id))

    @billing.event_subscriber(OrderPlaced, name="audit")
    async def audit(evt, ctx) -> None:
        got.append(("billing.audit", evt.order_id))

    @shipping.event_subscriber
    async def on_placed_ship(evt: OrderPlaced) -> None:
        got.append(("shipping", evt.order_id))

    async with billing, shipping:
        await billing.publish(OrderPlaced(order_id="o-1"))
        await eventually(lambda: len(got) >= 3, what="three copies")

    assert sorted(got) == [
        ("billing.audit", "o-1"),
        ("billing.on_placed", "o-1"),
        ("shipping", "o-1"),
    ]


async def test_instances_of_one_service_compete_for_a_subscription(make_bus):
    instances = [make_bus("billing") for _ in range(2)]
    seen: Counter[str] = Counter()

    for bus in instances:

        @bus.event_subscriber
        async def on_placed(evt: OrderPlaced) -> None:
            seen[evt.order_id] += 1

    for bus in instances:
        await bus.start()
    for n in range(20):
        await instances[0].publish(OrderPlaced(order_id=f"o-{n}"))
    await eventually(lambda: sum(seen.values()) >= 20, what="all events handled")
    for bus in instances:
        await bus.stop()
    assert set(seen.values()) == {1}
    assert len(seen) == 20


async def test_publishing_with_no_subscriber_is_fine(make_bus):
    bus = make_bus("orders")
    async with bus:
        message_id = await bus.publish(OrderPlaced(order_id="nobody-listens"))
    assert message_id


async def test_event_published_by_a_handler_reaches_another_service(make_bus):
    orders = make_bus("orders")
    billing = make_bus("billing")
    received = asyncio.Event()

    @billing.event_subscriber
    async def on_placed(evt: OrderPlaced, ctx: Context) -> None:
        assert ctx.envelope.source == "orders"
        received.set()

    async with billing, orders:
        await orders.publish(OrderPlaced(order_id="o-9"))
        await asyncio.wait_for(received.wait(), 10)
