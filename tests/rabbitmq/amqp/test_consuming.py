"""Consuming: prefetch, deliveries assembled and handed over synchronously in order, acks with
multiple, nack and reject, cancellation by us and by the broker, and a message whose type is
not UTF-8 delivered with a flag instead of killing the connection."""

from __future__ import annotations

import asyncio
import struct

import pytest
from busline.transports.rabbitmq.amqp import Delivery
from pamqp.commands import Basic

pytestmark = pytest.mark.rabbitmq


class Inbox:
    """Collects deliveries; ``wait(n)`` until n arrived."""

    def __init__(self, ack: bool = False) -> None:
        self.items: list[Delivery] = []
        self._ack = ack
        self._changed = asyncio.Event()

    def __call__(self, delivery: Delivery) -> None:
        self.items.append(delivery)
        if self._ack:
            delivery.ack()
        self._changed.set()

    async def wait(self, count: int, timeout: float = 10) -> list[Delivery]:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


async def fill(connection, queue: str, count: int, **declare) -> None:
    channel = await connection.channel(confirms=True)
    await channel.queue_declare(queue, **declare)
    await asyncio.gather(
        *(
            channel.publish(str(i).encode(), "", queue, Basic.Properties(message_id=str(i)))
            for i in range(count)
        )
    )
    await channel.close()


async def unacked(connection, queue: str) -> tuple[int, int]:
    """(ready, consumers) of ``queue``, from a passive declare."""
    channel = await connection.channel()
    ok = await channel.queue_declare(queue, passive=True)
    await channel.close()
    return int(ok.message_count), int(ok.consumer_count)


async def test_deliveries_arrive_in_order_within_the_prefetch_window(connection):
    await fill(connection, "work", 50)
    channel = await connection.channel()
    await channel.basic_qos(prefetch_count=10)
    inbox = Inbox()
    tag = await channel.basic_consume("work", inbox)
    await inbox.wait(10)
    await asyncio.sleep(0.2)
    assert len(inbox.items) == 10  # no more until some are acked
    channel.ack(inbox.items[9].delivery_tag, multiple=True)  # all ten at once
    got = await inbox.wait(20)
    assert [d.body for d in got[:20]] == [str(i).encode() for i in range(20)]
    assert all(d.consumer_tag == tag and d.properties.message_id == d.body.decode() for d in got)
    while len(inbox.items) < 50:  # one multiple ack per window
        channel.ack(inbox.items[-1].delivery_tag, multiple=True)
        await inbox.wait(min(50, len(inbox.items) + 10))
    channel.ack(inbox.items[-1].delivery_tag, multiple=True)
    await channel.basic_cancel(tag)
    assert tag not in channel.consumers
    assert (await unacked(connection, "work"))[0] == 0


async def test_nack_and_reject_requeue_or_drop(connection):
    await fill(connection, "settle", 3)
    channel = await connection.channel()
    inbox = Inbox()
    await channel.basic_consume("settle", inbox)
    first, second, third = await inbox.wait(3)
    channel.nack(first.delivery_tag, requeue=True)
    channel.reject(second.delivery_tag, requeue=False)
    third.ack()
    redelivered = (await inbox.wait(4))[3]
    assert redelivered.body == first.body and redelivered.redelivered
    redelivered.ack()
    await asyncio.sleep(0.2)
    assert len(inbox.items) == 4  # the rejected one is gone


async def test_closing_the_channel_returns_unacked_deliveries(connection):
    await fill(connection, "back", 5)
    channel = await connection.channel()
    inbox = Inbox()
    await channel.basic_consume("back", inbox)
    await inbox.wait(5)
    await channel.close()
    assert (await unacked(connection, "back"))[0] == 5


async def test_the_broker_cancelling_a_consumer_is_reported(connection):
    await fill(connection, "doomed", 1)
    channel = await connection.channel()
    cancelled: list[str] = []
    channel.on_cancel.append(cancelled.append)
    tag = await channel.basic_consume("doomed", Inbox(ack=True))
    admin = await connection.channel()
    await admin.queue_delete("doomed")
    for _ in range(100):
        if cancelled:
            break
        await asyncio.sleep(0.02)
    assert cancelled == [tag] and tag not in channel.consumers
    assert not channel.is_closed


async def test_a_callback_that_raises_does_not_stop_the_stream(connection, caplog):
    await fill(connection, "buggy", 3)
    channel = await connection.channel()
    seen: list[bytes] = []

    def callback(delivery: Delivery) -> None:
        seen.append(delivery.body)
        delivery.ack()
        if delivery.body == b"0":
            raise RuntimeError("bug")

    await channel.basic_consume("buggy", callback)
    for _ in range(100):
        if len(seen) == 3:
            break
        await asyncio.sleep(0.02)
    assert seen == [b"0", b"1", b"2"] and "consumer callback failed" in caplog.text


def bad_type_properties(message_id: str) -> bytes:
    """Encoded properties: message_id, and a type holding byte 0xff (not UTF-8)."""
    mid = message_id.encode()
    return struct.pack(">H", 0x0080 | 0x0020) + bytes([len(mid)]) + mid + b"\x04ty\xffe"


async def test_an_undecodable_header_is_flagged_and_the_connection_lives(connection):
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("poison")
    await channel.publish(b"ok-1", "", "poison", Basic.Properties(message_id="1"))
    await channel.publish(b"bad", "", "poison", bad_type_properties("2"))
    await channel.publish(b"ok-3", "", "poison", Basic.Properties(message_id="3"))
    inbox = Inbox(ack=True)
    consumer = await connection.channel()
    await consumer.basic_consume("poison", inbox)
    first, bad, third = await inbox.wait(3)
    assert first.header_error is None and third.header_error is None
    assert third.body == b"ok-3" and third.properties.message_id == "3"
    assert bad.body == b"bad" and bad.properties.message_id == "2"
    assert bad.header_error is not None and "message_type is not UTF-8" in bad.header_error
    assert bad.raw_header is not None and b"ty\xffe" in bad.raw_header
    assert not connection.is_closed and not consumer.is_closed
    got = await channel.basic_get("poison")  # Basic.Get survives it too
    assert got is None
