"""Faults made with a proxy between client and broker: a reset fails every pending confirm
with a connection error; a stalled peer is detected within the configured bound; a blocked
connection and a paused channel hold publishers back until released."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from busline.transports.rabbitmq.amqp import ConnectionClosedError, codec, connect
from pamqp.commands import Channel as Ch
from pamqp.commands import Connection as C

pytestmark = pytest.mark.rabbitmq


async def test_a_reset_fails_pending_confirms_with_a_connection_error(proxy, amqp_url):
    connection = await connect(proxy.url(amqp_url))
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("q", durable=True)
    proxy.frozen = True  # no confirms come back
    pending = [asyncio.ensure_future(channel.publish(b"x", "", "q")) for _ in range(100)]
    await asyncio.sleep(0.2)
    assert not any(p.done() for p in pending)
    rpc = asyncio.ensure_future(channel.queue_declare("q", durable=True))
    await asyncio.sleep(0.05)
    proxy.reset()
    results = await asyncio.wait_for(asyncio.gather(*pending, rpc, return_exceptions=True), 5)
    assert all(isinstance(r, ConnectionClosedError) for r in results), results[:3]
    assert isinstance(connection.closed.result(), ConnectionClosedError)
    with pytest.raises(ConnectionError):
        await connection.channel()


async def test_a_stalled_peer_is_dropped_within_the_bound(proxy, amqp_url, caplog):
    caplog.set_level(logging.WARNING)
    connection = await connect(proxy.url(amqp_url), heartbeat=1, stall_timeout=1.5)
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("q")
    proxy.frozen = True
    started = time.monotonic()
    with pytest.raises(ConnectionClosedError, match="stalled"):
        await asyncio.wait_for(channel.publish(b"x", "", "q"), 10)
    assert time.monotonic() - started < 1.5 + 1.0
    assert "connection stalled" in caplog.text or "stalled" in caplog.text


async def test_heartbeats_keep_an_idle_connection_open(amqp_url):
    connection = await connect(amqp_url, heartbeat=1, stall_timeout=1.5)
    await asyncio.sleep(3.5)  # idle: only heartbeats flow, both ways
    channel = await connection.channel()
    await channel.queue_declare("alive")
    assert not connection.is_closed
    await connection.close()


async def test_a_blocked_connection_holds_publishers_until_unblocked(proxy, amqp_url):
    connection = await connect(proxy.url(amqp_url))
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("q")
    proxy.inject(codec.method_frame(C.Blocked(reason="low on memory"), 0))
    for _ in range(100):
        if connection.blocked:
            break
        await asyncio.sleep(0.01)
    assert connection.blocked and connection.blocked_reason == "low on memory"
    publish = asyncio.ensure_future(channel.publish(b"x", "", "q"))
    await asyncio.sleep(0.3)
    assert not publish.done()
    proxy.inject(codec.method_frame(C.Unblocked(), 0))
    await asyncio.wait_for(publish, 5)
    assert not connection.blocked
    await connection.close()


async def test_channel_flow_pauses_and_resumes_publishing(proxy, amqp_url):
    # The broker never sent Channel.Flow, so it must not see our FlowOk.
    proxy.drop_to_broker = lambda kind, channel, payload: (
        kind == codec.FRAME_METHOD and codec.method_id(payload) == (20 << 16 | 21)
    )
    connection = await connect(proxy.url(amqp_url))
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("q")
    proxy.inject(codec.method_frame(Ch.Flow(active=False), channel.id))
    await asyncio.sleep(0.2)
    publish = asyncio.ensure_future(channel.publish(b"x", "", "q"))
    await asyncio.sleep(0.3)
    assert not publish.done()
    proxy.inject(codec.method_frame(Ch.Flow(active=True), channel.id))
    await asyncio.wait_for(publish, 5)
    await connection.close()


async def test_closing_the_connection_fails_what_is_pending(connection):
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("q")
    await connection.close()
    assert channel.is_closed
    with pytest.raises(ConnectionClosedError):
        await channel.publish(b"x", "", "q")
    with pytest.raises(ConnectionClosedError):
        channel.ack(1)
