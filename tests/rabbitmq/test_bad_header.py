"""A message whose AMQP properties do not decode (a ``type`` holding byte 0xff) is parked with
its reason; the connection survives and the valid messages behind it are handled.

Under aiormq this message killed the connection in the frame reader, and the reconnect got the
same message again: a loop. It is published raw here (busline's AMQP client takes pre-encoded
properties), since no well-behaved client would send it.
"""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest
from busline.transports.rabbitmq.amqp import connect
from pamqp.commands import Basic

from busline import Bus
from tests.rabbitmq.helpers import PlaceOrder
from tests.support import body_of, headers_of, take_from_queue

pytestmark = pytest.mark.rabbitmq

QUEUE = "rmq.PlaceOrder"


def bad_properties(message_id: str) -> bytes:
    """delivery_mode 2, a message id, and a type that is not UTF-8 (flags first)."""
    flags = 0x1000 | 0x0080 | 0x0020
    mid = message_id.encode()
    bad_type = b"rmq.PlaceOrder\xff"
    return (
        struct.pack(">HB", flags, 2) + bytes([len(mid)]) + mid + bytes([len(bad_type)]) + bad_type
    )


def good_properties(message_id: str) -> Basic.Properties:
    return Basic.Properties(message_id=message_id, message_type=QUEUE, delivery_mode=2)


async def test_an_undecodable_type_is_parked_and_the_rest_are_handled(amqp_url, caplog):
    caplog.set_level(logging.WARNING)
    bus = Bus("orders", amqp_url, send_timeout=10)
    handled: list[str] = []
    both = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.append(cmd.order_id)
        if len(handled) == 2:
            both.set()

    async with bus:
        raw = await connect(amqp_url)
        try:
            channel = await raw.channel(confirms=True)
            body = b'{"order_id":"%s","amount":1}'
            await channel.publish(body % b"before", "", QUEUE, good_properties("before"), True)
            await channel.publish(body % b"bad", "", QUEUE, bad_properties("bad"), True)
            await channel.publish(body % b"after", "", QUEUE, good_properties("after"), True)
        finally:
            await raw.close()
        await asyncio.wait_for(both.wait(), 10)
        parked = await take_from_queue(amqp_url, "busline.error", 1)
        assert bus.transport.connected

    assert handled == ["before", "after"]
    message = parked[0]
    headers = headers_of(message)
    assert message.message_id == "bad" and body_of(message) == body % b"bad"
    assert headers["busline-error-reason"] == "undecodable"
    assert headers["busline-original-queue"] == QUEUE
    assert headers["busline-service"] == "orders"
    assert "message_type is not UTF-8" in headers["busline-error-message"]
    assert "lost the connection" not in caplog.text  # no reconnect loop
