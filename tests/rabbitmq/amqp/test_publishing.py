"""Publisher confirms against the broker: tags counted, multiple acks, nacks, returns of
mandatory messages, large bodies split by frame_max, waiting for flow."""

from __future__ import annotations

import asyncio

import pytest
from busline.transports.rabbitmq.amqp import NackedError, UnroutableError, connect
from pamqp.commands import Basic

pytestmark = pytest.mark.rabbitmq


def props(message_id: str) -> Basic.Properties:
    return Basic.Properties(message_id=message_id, delivery_mode=2)


async def test_many_publishes_in_flight_are_all_confirmed(connection):
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("bulk", durable=True)
    await asyncio.gather(
        *(channel.publish(b"x", "", "bulk", props(str(i)), mandatory=True) for i in range(2000))
    )
    assert channel.confirms is not None and len(channel.confirms) == 0
    declared = await channel.queue_declare("bulk", passive=True)
    assert declared.message_count == 2000


async def test_a_mandatory_message_nobody_takes_fails_as_unroutable(connection):
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("exists")
    results = await asyncio.gather(
        channel.publish(b"a", "", "exists", props("a"), mandatory=True),
        channel.publish(b"b", "", "nowhere", props("b"), mandatory=True),
        channel.publish(b"c", "", "exists", props("c"), mandatory=True),
        channel.publish(b"d", "", "nowhere", mandatory=True),  # no message id
        channel.publish(b"e", "", "nowhere", props("e")),  # not mandatory: dropped, acked
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None and results[4] is None
    for failed in (results[1], results[3]):
        assert isinstance(failed, UnroutableError) and failed.reply_code == 312
    assert not channel.is_closed


async def test_a_refused_message_fails_as_nacked(connection):
    channel = await connection.channel(confirms=True)
    await channel.queue_declare(
        "full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    await channel.publish(b"1", "", "full")
    with pytest.raises(NackedError):
        await channel.publish(b"2", "", "full")
    await channel.publish(b"3", "", "other-not-mandatory")  # the channel carries on


async def test_a_body_larger_than_frame_max_round_trips(amqp_url):
    connection = await connect(amqp_url)
    try:
        assert connection.frame_max == 131072
        channel = await connection.channel(confirms=True)
        await channel.queue_declare("big")
        body = bytes(range(256)) * 2000  # 512,000 bytes: four body frames
        await channel.publish(body, "", "big", props("big"), mandatory=True)
        got = await channel.basic_get("big", no_ack=True)
        assert got is not None and got.body == body and got.properties.message_id == "big"
        await channel.publish(b"", "", "big", props("empty"), mandatory=True)
        empty = await channel.basic_get("big", no_ack=True)
        assert empty is not None and empty.body == b""
    finally:
        await connection.close()


async def test_pre_encoded_properties_are_sent_as_they_are(connection):
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("raw")
    encoded = props("pre").marshal()
    await channel.publish(b"x", "", "raw", encoded, mandatory=True)
    got = await channel.basic_get("raw", no_ack=True)
    assert got is not None and got.properties.message_id == "pre"


async def test_publishing_without_confirms_returns_no_future(connection):
    channel = await connection.channel()
    await channel.queue_declare("plain")
    assert channel.publish_nowait(b"x", "", "plain") is None
    await channel.publish(b"y", "", "plain")
    declared = await channel.queue_declare("plain", passive=True)
    for _ in range(50):
        if declared.message_count == 2:
            break
        await asyncio.sleep(0.05)
        declared = await channel.queue_declare("plain", passive=True)
    assert declared.message_count == 2
