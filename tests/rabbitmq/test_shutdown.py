"""Graceful shutdown under load: everything handled is acked, nothing unacked, nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from busline import Bus
from tests.rabbitmq.helpers import PlaceOrder, ready_count
from tests.support import eventually

pytestmark = pytest.mark.rabbitmq

TOTAL = 300


async def test_stopping_under_load_acks_every_handled_message(amqp_url):
    sender = Bus("checkout", amqp_url, send_timeout=10)
    async with sender:
        await asyncio.gather(
            *(sender.send(PlaceOrder(order_id=str(i), amount=1.0)) for i in range(TOTAL))
        )

    first = Bus("orders", amqp_url, send_timeout=10, prefetch=20, shutdown_timeout=30)
    handled_first: list[str] = []
    running = 0
    gate = asyncio.Event()

    @first.command_handler
    async def slow(cmd: PlaceOrder) -> None:
        nonlocal running
        running += 1
        if len(handled_first) >= 40:
            await gate.wait()  # busy until the bus is stopping
        else:
            await asyncio.sleep(0.005)  # the handler's work
        running -= 1
        handled_first.append(cmd.order_id)

    await first.start()
    await eventually(lambda: len(handled_first) >= 40 and running >= 5, timeout=30, what="load")
    in_flight = running
    stopping = asyncio.create_task(first.stop())
    await eventually(lambda: repr(first).endswith("stopping>"), what="the bus to be stopping")
    gate.set()
    await asyncio.wait_for(stopping, 30)
    assert in_flight >= 5  # it really stopped under load

    # Every handled message was acked before the connection closed (an unacked one would be
    # back in the queue), and nothing else was taken away.
    assert len(handled_first) >= 40
    assert len(set(handled_first)) == len(handled_first)
    assert await ready_count(amqp_url, "rmq.PlaceOrder") == TOTAL - len(handled_first)

    second = Bus("orders", amqp_url, send_timeout=10)
    handled_second: list[str] = []

    @second.command_handler
    async def fast(cmd: PlaceOrder) -> None:
        handled_second.append(cmd.order_id)

    async with second:
        await eventually(
            lambda: len(handled_second) >= TOTAL - len(handled_first),
            timeout=30,
            what="the rest to be handled",
        )
    assert not set(handled_first) & set(handled_second)
    assert set(handled_first) | set(handled_second) == {str(i) for i in range(TOTAL)}
