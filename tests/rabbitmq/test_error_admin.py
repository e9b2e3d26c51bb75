"""The RabbitMQ error-queue admin (busline's AMQP client) and the transport's background tasks, on
the broker."""

from __future__ import annotations

import asyncio

import pytest
from busline.transports.rabbitmq.error_admin import RabbitMQErrorQueue

from busline import Bus
from busline.envelope import HEADER_ERROR_QUEUE
from tests.rabbitmq.helpers import PlaceOrder, plain_channel, plain_message, ready_count
from tests.support import eventually

pytestmark = pytest.mark.rabbitmq

ERROR_QUEUE = "busline.error"


async def _park(url: str, message_id: str, original_queue: str) -> None:
    async with plain_channel(url) as channel:
        message = plain_message(
            b"{}",
            message_id=message_id,
            type="rmq.PlaceOrder",
            headers={HEADER_ERROR_QUEUE: original_queue, "busline-attempt": 3},
        )
        await channel.default_exchange.publish(message, routing_key=ERROR_QUEUE)


async def test_browse_replay_purge(amqp_url):
    async with plain_channel(amqp_url) as channel:
        await channel.declare_queue(ERROR_QUEUE, durable=True)
        await channel.declare_queue("rmq.home", durable=True)
    await _park(amqp_url, "m-home", "rmq.home")
    await _park(amqp_url, "m-gone", "rmq.gone")  # its queue no longer exists
    await _park(amqp_url, "m-kept", "rmq.home")

    errors = await RabbitMQErrorQueue.open(amqp_url, ERROR_QUEUE)
    try:
        parked = await errors.browse()
        assert [m.message_id for m in parked] == ["m-home", "m-gone", "m-kept"]
        assert parked[0].original_queue == "rmq.home"
        assert [m.message_id for m in await errors.browse(limit=1)] == ["m-home"]
        assert await ready_count(amqp_url, ERROR_QUEUE) == 3  # browsing takes nothing away

        # The returned one keeps its error copy instead of being acked away.
        assert await errors.replay(["m-home", "m-gone"]) == ["m-home"]
        assert [m.message_id for m in await errors.browse()] == ["m-gone", "m-kept"]
        assert await ready_count(amqp_url, "rmq.home") == 1

        with pytest.raises(KeyError, match="m-home"):
            await errors.replay(["m-home"])  # already replayed
        assert await errors.purge() == 2
        assert await errors.browse() == []
    finally:
        await errors.close()

    async with plain_channel(amqp_url) as channel:
        queue = await channel.declare_queue("rmq.home", passive=True)
        replayed = await queue.get(fail=True)
        assert replayed is not None
        assert replayed.message_id == "m-home"
        assert replayed.headers["busline-attempt"] == 1  # fresh counters
        assert HEADER_ERROR_QUEUE not in replayed.headers


async def test_closing_awaits_the_tasks_a_lost_consumer_left(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10)

    @bus.command_handler
    async def handle(cmd: PlaceOrder) -> None:
        pass

    async with bus:
        async with plain_channel(amqp_url) as channel:
            # The broker cancels the consumer: its channel is closed in a background task and
            # the subscription consumes again on a new one.
            await channel.queue_delete("rmq.PlaceOrder")
        await eventually(
            lambda: _queue_exists(amqp_url, "rmq.PlaceOrder"), what="the queue declared again"
        )
    leftovers = [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith(("busline:retire:", "busline:acks:"))
    ]
    assert leftovers == []


async def _queue_exists(url: str, queue: str) -> bool:
    try:
        await ready_count(url, queue)
    except Exception:
        return False
    return True
