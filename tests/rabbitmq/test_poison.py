"""Messages that cannot be processed end up in the error queue; the consumer keeps going."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import pytest

from busline import Bus, RetryPolicy
from tests.rabbitmq.helpers import PlaceOrder, plain_channel, plain_message
from tests.support import body_of, headers_of, take_from_queue

pytestmark = pytest.mark.rabbitmq


async def test_poison_messages_are_parked_with_their_reason(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10, max_message_size=1000)
    handled: list[str] = []
    good = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.append(cmd.order_id)
        if cmd.order_id == "good":
            good.set()

    poison = {
        "bad-json": (b"{not json", "rmq.PlaceOrder", "undecodable"),
        "unknown": (b'{"order_id":"x","amount":1}', "rmq.SomethingElse", "unknown-type"),
        "untyped": (b'{"order_id":"x","amount":1}', None, "unknown-type"),
        "schema": (b'{"order_id":5}', "rmq.PlaceOrder", "schema-mismatch"),
        "huge": (
            json.dumps({"order_id": "x" * 2000, "amount": 1}).encode(),
            "rmq.PlaceOrder",
            "too-large",
        ),
    }
    async with bus, plain_channel(amqp_url) as channel:
        for message_id, (body, type_, _) in poison.items():
            await channel.default_exchange.publish(
                plain_message(body, message_id=message_id, type=type_, headers={"x-origin": "t"}),
                "rmq.PlaceOrder",
            )
        # Odd properties and headers must not upset the consumer either.
        await channel.default_exchange.publish(
            plain_message(
                b'{"order_id":"odd","amount":1}',
                type="rmq.PlaceOrder",
                headers={
                    "busline-attempt": "not a number",
                    "busline-conversation-id": bytearray(b"\xff\xfe"),
                    "x-bytes": bytearray(b"\x00\x01"),
                    "x-nested": {"list": [1, "two", 3.0]},
                },
                priority=3,
                expiration=600,
            ),
            "rmq.PlaceOrder",
        )
        await channel.default_exchange.publish(
            aio_pika.Message(b'{"order_id":"good","amount":1}', type="rmq.PlaceOrder"),
            "rmq.PlaceOrder",
        )
        await asyncio.wait_for(good.wait(), 10)
        parked = await take_from_queue(amqp_url, "busline.error", len(poison))

    assert handled == ["odd", "good"]
    by_id = {message.message_id: message for message in parked}
    assert set(by_id) == set(poison)
    for message_id, (body, type_, reason) in poison.items():
        message = by_id[message_id]
        headers = headers_of(message)
        assert headers["busline-error-reason"] == reason, message_id
        assert headers["busline-original-queue"] == "rmq.PlaceOrder"
        assert headers["busline-service"] == "orders"
        assert headers["x-origin"] == "t"  # original headers kept
        assert body_of(message) == body  # original body kept
        assert message.type == type_
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_a_failing_handler_parks_the_message_and_the_consumer_goes_on(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=10, retry=RetryPolicy(immediate=0, delays=()))
    done = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        if cmd.order_id == "boom":
            raise ValueError("no such customer")
        done.set()

    async with bus:
        failed_id = await bus.send(PlaceOrder(order_id="boom", amount=1.0))
        await bus.send(PlaceOrder(order_id="fine", amount=1.0))
        await asyncio.wait_for(done.wait(), 10)
        [parked] = await take_from_queue(amqp_url, "busline.error", 1)

    headers = headers_of(parked)
    assert parked.message_id == failed_id
    assert headers["busline-error-reason"] == "handler-error"
    assert headers["busline-error-type"] == "ValueError"
    assert headers["busline-error-message"] == "no such customer"
