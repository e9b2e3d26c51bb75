"""docs/wire-format.md, checked with a plain aio-pika client that knows nothing of busline."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import aio_pika
import pytest

from busline import Bus, Context
from tests.rabbitmq.helpers import OrderPlaced, PlaceOrder, plain_channel, plain_message

pytestmark = pytest.mark.rabbitmq


async def test_a_command_from_a_plain_client_is_handled(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10)
    seen: list[tuple[PlaceOrder, Context]] = []
    handled = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        seen.append((cmd, ctx))
        handled.set()

    async with bus, plain_channel(amqp_url) as channel:
        # Declared as the document says, so it works whether or not busline came first.
        await channel.declare_queue(
            "rmq.PlaceOrder", durable=True, arguments={"x-queue-type": "quorum"}
        )
        message = plain_message(
            b'{"order_id":"o-1","amount":9.5}',
            message_id="plain-1",
            correlation_id="corr-1",
            type="rmq.PlaceOrder",
            content_type="application/json",
            timestamp=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
            app_id="legacy-shop",
            headers={
                "busline-causation-id": "cause-1",
                "busline-idempotency-key": "key-1",
                "busline-attempt": 1,
                "x-tenant": "acme",
            },
        )
        await channel.default_exchange.publish(message, "rmq.PlaceOrder", mandatory=True)
        await asyncio.wait_for(handled.wait(), 10)

    cmd, ctx = seen[0]
    assert cmd == PlaceOrder(order_id="o-1", amount=9.5)
    assert ctx.message_id == "plain-1"
    assert ctx.correlation_id == "corr-1"
    assert ctx.conversation_id == "corr-1"  # defaults to the correlation id
    assert ctx.causation_id == "cause-1"
    assert ctx.idempotency_key == "key-1"
    assert ctx.attempt == 1
    assert ctx.headers == {"x-tenant": "acme"}
    assert ctx.envelope.source == "legacy-shop"
    assert ctx.envelope.timestamp == datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()


async def test_a_minimal_plain_command_gets_defaults(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10)
    seen: list[Context] = []
    handled = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        seen.append(ctx)
        handled.set()

    async with bus, plain_channel(amqp_url) as channel:
        message = aio_pika.Message(b'{"order_id":"o-2","amount":1}', type="rmq.PlaceOrder")
        await channel.default_exchange.publish(message, "rmq.PlaceOrder", mandatory=True)
        await asyncio.wait_for(handled.wait(), 10)

    ctx = seen[0]
    assert ctx.message_id  # generated
    assert ctx.correlation_id == ctx.message_id
    assert ctx.conversation_id == ctx.message_id
    assert ctx.causation_id is None
    assert ctx.attempt == 1
    assert ctx.headers == {}


async def test_an_event_busline_publishes_reads_as_documented(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10)
    async with bus, plain_channel(amqp_url) as channel:
        exchange = await channel.declare_exchange(
            "rmq.OrderPlaced", aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange)
        before = int(time.time())
        message_id = await bus.publish(
            OrderPlaced(order_id="o-1"),
            correlation_id="corr-9",
            idempotency_key="key-9",
            headers={"x-tenant": "acme"},
        )
        async with queue.iterator(timeout=10) as messages:
            async for message in messages:
                await message.ack()
                break

    assert json.loads(message.body) == {"order_id": "o-1"}
    assert message.message_id == message_id
    assert message.correlation_id == "corr-9"
    assert message.type == "rmq.OrderPlaced"
    assert message.content_type == "application/json"
    assert message.app_id == "orders"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.timestamp is not None
    assert before <= message.timestamp.timestamp() <= time.time() + 1
    assert message.headers == {
        "busline-conversation-id": message_id,
        "busline-attempt": 1,
        "busline-idempotency-key": "key-9",
        "x-tenant": "acme",
    }


async def test_a_message_sent_from_a_handler_carries_causation(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10)

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.publish(OrderPlaced(order_id=cmd.order_id))

    async with bus, plain_channel(amqp_url) as channel:
        exchange = await channel.declare_exchange(
            "rmq.OrderPlaced", aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange)
        command_id = await bus.send(PlaceOrder(order_id="o-3", amount=2.0), correlation_id="c-3")
        async with queue.iterator(timeout=10) as messages:
            async for message in messages:
                await message.ack()
                break

    assert message.correlation_id == "c-3"
    assert message.headers["busline-causation-id"] == command_id
    assert message.headers["busline-conversation-id"] == command_id
