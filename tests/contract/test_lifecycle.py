"""Start, graceful stop, and misuse of the lifecycle. Every transport."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from busline import BusNotRunningError, Context
from tests.contract.messages import PlaceOrder
from tests.support import eventually


async def test_stop_finishes_in_flight_handlers_and_loses_nothing(make_bus):
    first = make_bus("orders", prefetch=4)
    handled: Counter[str] = Counter()
    started = 0
    gate = asyncio.Event()

    @first.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        nonlocal started
        started += 1
        await gate.wait()
        handled[cmd.order_id] += 1

    total = 30
    await first.start()
    for n in range(total):
        await first.send(PlaceOrder(order_id=f"o-{n}", amount=1.0))
    await eventually(lambda: started == 4, what="four handlers in flight")
    stopping = asyncio.create_task(first.stop())
    await asyncio.sleep(0)  # let stop() cancel the subscription while handlers are blocked
    gate.set()
    await asyncio.wait_for(stopping, 15)
    in_first = sum(handled.values())
    assert in_first >= 4

    second = make_bus("orders")

    @second.command_handler
    async def place_again(cmd: PlaceOrder) -> None:
        handled[cmd.order_id] += 1

    async with second:
        await eventually(lambda: sum(handled.values()) >= total, what="the rest handled")
    assert set(handled.values()) == {1}, "a message was handled twice: an ack was lost"
    assert len(handled) == total


async def test_send_before_start_raises_clearly(make_bus):
    bus = make_bus("orders")
    with pytest.raises(BusNotRunningError, match="async with bus"):
        await bus.send(PlaceOrder(order_id="x", amount=1.0))


async def test_bus_run_stops_on_cancellation(make_bus):
    bus = make_bus("orders")
    handled = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.set()

    runner = asyncio.create_task(bus.run())
    await eventually(lambda: repr(bus).endswith("running>"), what="bus running")
    await bus.send(PlaceOrder(order_id="x", amount=1.0))
    await asyncio.wait_for(handled.wait(), 10)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert repr(bus).endswith("stopped>")
