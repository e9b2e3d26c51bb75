"""Channels: open and close, one RPC at a time, a channel error closes only its channel (with
the broker's reason), an abandoned RPC closes its channel, declarations and Basic.Get."""

from __future__ import annotations

import asyncio

import pytest
from busline.transports.rabbitmq.amqp import (
    ChannelClosedError,
    NotFoundError,
    PreconditionFailedError,
)

pytestmark = pytest.mark.rabbitmq


async def test_open_and_close(connection):
    channel = await connection.channel()
    assert not channel.is_closed
    await channel.close()
    assert channel.is_closed and channel.closed.result() is None
    with pytest.raises(ChannelClosedError):
        await channel.queue_declare("q")
    again = await connection.channel()  # the connection is unaffected
    await again.queue_declare("q")


async def test_concurrent_rpcs_on_one_channel_each_get_their_reply(connection):
    channel = await connection.channel()
    names = [f"q{i}" for i in range(20)]
    replies = await asyncio.gather(*(channel.queue_declare(n) for n in names))
    assert [r.queue for r in replies] == names


async def test_a_channel_error_closes_only_that_channel_with_the_reason(connection):
    doomed = await connection.channel()
    other = await connection.channel(confirms=True)
    with pytest.raises(NotFoundError) as raised:
        await doomed.queue_declare("missing", passive=True)
    error = raised.value
    assert error.reply_code == 404 and "missing" in error.reply_text
    assert error.method == "Queue.Declare"
    assert doomed.is_closed and doomed.closed.result() is error
    with pytest.raises(NotFoundError):  # later calls raise the same reason
        await doomed.queue_declare("x")
    await other.queue_declare("still-fine")
    await other.publish(b"x", "", "still-fine", mandatory=True)
    assert not connection.is_closed


async def test_redeclaring_with_other_arguments_is_a_precondition_failure(connection):
    channel = await connection.channel()
    await channel.queue_declare("typed", durable=True, arguments={"x-queue-type": "quorum"})
    channel = await connection.channel()
    with pytest.raises(PreconditionFailedError) as raised:
        await channel.queue_declare("typed", durable=True)
    assert raised.value.reply_code == 406


async def test_an_abandoned_rpc_closes_its_channel(connection):
    channel = await connection.channel()
    task = asyncio.ensure_future(channel.queue_declare("slow"))
    await asyncio.sleep(0)  # the request is written; cancel before the reply
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert channel.is_closed
    with pytest.raises(ChannelClosedError, match="abandoned"):
        await channel.queue_declare("q")


async def test_declare_bind_purge_delete_and_get(connection):
    channel = await connection.channel(confirms=True)
    await channel.exchange_declare("ev", "fanout", durable=True)
    ok = await channel.queue_declare("sub", durable=True)
    assert ok.message_count == 0
    await channel.queue_bind("sub", "ev")
    for i in range(3):
        await channel.publish(f"m{i}".encode(), "ev", "")
    first = await channel.basic_get("sub")
    assert first is not None and first.body == b"m0" and first.message_count == 2
    assert first.exchange == "ev" and not first.redelivered
    first.ack()
    assert await channel.queue_purge("sub") == 2
    assert await channel.basic_get("sub") is None
    await channel.queue_unbind("sub", "ev")
    await channel.publish(b"lost", "ev", "")
    assert await channel.queue_delete("sub") == 0
    await channel.exchange_delete("ev")
    with pytest.raises(NotFoundError):
        await channel.exchange_declare("ev", "fanout", passive=True)


async def test_many_channels_are_numbered_and_reused(connection):
    channels = [await connection.channel() for _ in range(5)]
    assert len({c.id for c in channels}) == 5
    for channel in channels:
        await channel.close()
    more = [await connection.channel() for _ in range(5)]
    assert all(not c.is_closed for c in more)
