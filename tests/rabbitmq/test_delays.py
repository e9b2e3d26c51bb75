"""defer(): the broker holds a delayed message in a TTL queue and gives it back; the consumer
does not keep it unacked meanwhile. Works on quorum and classic queues."""

from __future__ import annotations

import asyncio
import time

import aiormq
import pytest
from busline.transports.rabbitmq import RabbitMQTransport
from busline.transports.rabbitmq.delays import delay_name

from busline import Bus, Context, RetryPolicy
from busline.envelope import Envelope, new_message_id
from busline.transport import ConsumerSpec, TransportSettings
from tests.rabbitmq.helpers import PlaceOrder, ready_count, unacked_in_vhost
from tests.support import eventually

pytestmark = pytest.mark.rabbitmq


def _envelope(body: bytes = b'{"order_id":"d-1","amount":1}') -> Envelope:
    message_id = new_message_id()
    return Envelope(message_id, "rmq.PlaceOrder", body, message_id, message_id)


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_defer_redelivers_after_the_delay_without_holding_the_message(amqp_url, queue_type):
    transport = RabbitMQTransport(
        amqp_url, TransportSettings(service="t", queue_type=queue_type, send_timeout=10)
    )
    await transport.start()
    try:
        received: asyncio.Queue = asyncio.Queue()
        await transport.subscribe(ConsumerSpec("rmq.PlaceOrder", prefetch=4), received.put_nowait)
        sent = _envelope()
        await transport.send("rmq.PlaceOrder", sent)
        first = await asyncio.wait_for(received.get(), 10)
        deferred_at = time.monotonic()
        # Long enough to look at the queues (each look is a rabbitmqctl call) in the meantime.
        await first.defer(4.0, {"busline-attempt": 2, "x-note": "later"})

        # Meanwhile the broker holds it in the delay level's queue, and nothing is unacked in
        # the original queue: the consumer does not hold it.
        level = delay_name(4000, queue_type)

        async def held_by_the_broker() -> bool:
            in_delay_queue = await ready_count(amqp_url, level)
            unacked = await asyncio.to_thread(unacked_in_vhost, amqp_url)
            return in_delay_queue == 1 and unacked == 0

        await eventually(held_by_the_broker, timeout=3.5, what="the delay queue to hold it")
        assert received.empty()

        again = await asyncio.wait_for(received.get(), 10)
        assert time.monotonic() - deferred_at >= 3.9
        assert again.envelope.message_id == sent.message_id
        assert again.envelope.body == sent.body
        assert again.envelope.attempt == 2
        assert again.envelope.headers["x-note"] == "later"
        await again.ack()
    finally:
        await transport.close()
    assert await ready_count(amqp_url, "rmq.PlaceOrder") == 0
    assert await ready_count(amqp_url, level) == 0


async def test_delayed_retries_of_a_bus_go_through_the_broker(amqp_url):
    bus = Bus(
        "orders", amqp_url, send_timeout=10, retry=RetryPolicy(immediate=0, delays=(0.3, 0.3))
    )
    attempts: list[int] = []
    done = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        done.set()

    async with bus:
        await bus.send(PlaceOrder(order_id="r-1", amount=1.0))
        await asyncio.wait_for(done.wait(), 15)
    assert attempts == [1, 2, 3]


async def test_defer_with_no_delay_requeues_at_once(amqp_url):
    transport = RabbitMQTransport(amqp_url, TransportSettings(service="t", send_timeout=10))
    await transport.start()
    try:
        received: asyncio.Queue = asyncio.Queue()
        await transport.subscribe(ConsumerSpec("rmq.PlaceOrder", prefetch=4), received.put_nowait)
        await transport.send("rmq.PlaceOrder", _envelope())
        first = await asyncio.wait_for(received.get(), 10)
        await first.defer(0, {"busline-attempt": 2})
        again = await asyncio.wait_for(received.get(), 10)
        assert again.envelope.message_id == first.envelope.message_id
        assert again.envelope.attempt == 2
        await again.ack()
    finally:
        await transport.close()


async def test_a_ten_minute_retry_delay_is_held_by_the_broker_not_the_consumer(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10, retry=RetryPolicy(immediate=0, delays=(600,)))
    attempts: list[int] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("payment provider down")

    level = delay_name(600_000, "quorum")
    async with bus:
        await bus.send(PlaceOrder(order_id="slow", amount=1.0))

        async def parked_in_delay_queue() -> bool:
            try:
                return await ready_count(amqp_url, level) == 1
            except aiormq.ChannelNotFoundEntity:
                return False  # the first failure has not declared the delay level yet

        await eventually(parked_in_delay_queue, timeout=10, what="the delay queue to hold it")
        # The consumer holds nothing: no unacked message anywhere, its own queue is empty, and
        # the message waits in the broker (so RabbitMQ's consumer timeout cannot trip).
        assert await asyncio.to_thread(unacked_in_vhost, amqp_url) == 0
        assert await ready_count(amqp_url, "rmq.PlaceOrder") == 0
        assert attempts == [1]
    # Still there after the consumer is gone: the broker owns the wait.
    assert await ready_count(amqp_url, level) == 1
