"""Queues and exchanges: types, declaration by the sender, unroutable commands, conflicts."""

from __future__ import annotations

import asyncio

import pytest

from busline import Bus, PublishError, UnroutableError
from tests.rabbitmq.helpers import (
    OrderPlaced,
    PlaceOrder,
    plain_channel,
    queue_type,
    ready_count,
)
from tests.support import eventually

pytestmark = pytest.mark.rabbitmq


async def test_queues_are_quorum_by_default(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10)

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None: ...

    @bus.event_subscriber
    async def audit(evt: OrderPlaced) -> None: ...

    async with bus:
        pass

    assert await queue_type(amqp_url, "rmq.PlaceOrder") == "quorum"
    assert await queue_type(amqp_url, "orders.audit") == "quorum"
    assert await queue_type(amqp_url, "busline.error") == "quorum"


async def test_classic_queues_on_request(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10, queue_type="classic")

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None: ...

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1", amount=1.0))

    assert await queue_type(amqp_url, "rmq.PlaceOrder") == "classic"
    assert await queue_type(amqp_url, "busline.error") == "classic"


async def test_a_command_sent_before_its_handler_starts_waits_in_its_queue(amqp_url):
    sender = Bus("checkout", amqp_url, send_timeout=10)
    async with sender:
        await sender.send(PlaceOrder(order_id="early", amount=1.0))
    assert await ready_count(amqp_url, "rmq.PlaceOrder") == 1

    receiver = Bus("orders", amqp_url, send_timeout=10)
    seen: list[str] = []
    handled = asyncio.Event()

    @receiver.command_handler
    async def place(cmd: PlaceOrder) -> None:
        seen.append(cmd.order_id)
        handled.set()

    async with receiver:
        await asyncio.wait_for(handled.wait(), 10)
    assert seen == ["early"]
    assert await ready_count(amqp_url, "rmq.PlaceOrder") == 0


async def test_an_event_with_no_subscriber_is_confirmed_and_dropped(amqp_url):
    async with Bus("orders", amqp_url, send_timeout=10) as bus:
        await bus.publish(OrderPlaced(order_id="nobody-cares"))


async def test_an_unroutable_command_raises_and_the_next_send_redeclares(amqp_url):
    bus = Bus("checkout", amqp_url, send_timeout=10)
    async with bus:
        await bus.send(PlaceOrder(order_id="first", amount=1.0))
        # Someone deletes the queue behind busline's back (its declaration is cached).
        async with plain_channel(amqp_url) as channel:
            await channel.queue_delete("rmq.PlaceOrder")
        with pytest.raises(UnroutableError, match=r"rmq\.PlaceOrder"):
            await bus.send(PlaceOrder(order_id="lost?", amount=1.0))
        await bus.send(PlaceOrder(order_id="second", amount=1.0))
    assert await ready_count(amqp_url, "rmq.PlaceOrder") == 1


async def test_a_queue_of_another_type_is_a_clear_error(amqp_url):
    async with plain_channel(amqp_url) as channel:
        await channel.declare_queue("rmq.PlaceOrder", durable=True)  # classic
    bus = Bus("orders", amqp_url, send_timeout=10)

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None: ...

    with pytest.raises(PublishError, match=r"PRECONDITION_FAILED.*x-queue-type"):
        await bus.start()
    await bus.stop()

    # The sender side reports the same, without hanging until the send timeout.
    sender = Bus("checkout", amqp_url, send_timeout=10)
    async with sender:
        with pytest.raises(PublishError, match=r"rmq\.PlaceOrder"):
            await asyncio.wait_for(sender.send(PlaceOrder(order_id="x", amount=1.0)), 5)
        # ... and the bus still works for everything else.
        await sender.publish(OrderPlaced(order_id="still-fine"))


async def test_subscribers_of_one_event_each_get_a_copy(amqp_url):
    bus = Bus("shipping", amqp_url, send_timeout=10)
    got: dict[str, list[str]] = {"a": [], "b": []}

    @bus.event_subscriber(name="a")
    async def first(evt: OrderPlaced) -> None:
        got["a"].append(evt.order_id)

    @bus.event_subscriber(name="b")
    async def second(evt: OrderPlaced) -> None:
        got["b"].append(evt.order_id)

    async with bus:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await eventually(lambda: got["a"] == ["o-1"] and got["b"] == ["o-1"], what="two copies")


async def test_an_event_exchange_deleted_behind_our_back_is_declared_again(amqp_url):
    async with Bus("orders", amqp_url, send_timeout=10) as bus:
        await bus.publish(OrderPlaced(order_id="first"))
        async with plain_channel(amqp_url) as channel:
            await channel.exchange_delete("rmq.OrderPlaced")
        # The cached declaration is wrong now: the broker closes the channel (404), busline
        # declares the exchange again and publishes on a new channel.
        await asyncio.wait_for(bus.publish(OrderPlaced(order_id="second")), 10)
        await bus.send(PlaceOrder(order_id="still-works", amount=1.0))


async def test_a_burst_of_concurrent_sends_is_pipelined_and_all_confirmed(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=30, prefetch=64)
    handled: set[str] = set()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.add(cmd.order_id)

    async with bus:
        # Far more than the prefetch and the publish window: every one pipelined and confirmed.
        ids = [str(i) for i in range(3000)]
        await asyncio.wait_for(
            asyncio.gather(*(bus.send(PlaceOrder(order_id=i, amount=1.0)) for i in ids)), 60
        )
        await eventually(lambda: len(handled) == len(ids), timeout=30, what="all handled")
    assert handled == set(ids)
