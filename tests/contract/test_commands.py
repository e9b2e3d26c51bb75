"""Commands: one handler, acked after success, kept when nobody consumes yet. Runs on every
transport."""

from __future__ import annotations

import asyncio

import pytest

from busline import Context
from tests.contract.messages import OrderPlaced, PlaceOrder, ShipOrder
from tests.support import eventually


async def test_command_reaches_its_handler_with_envelope_fields(make_bus):
    bus = make_bus("orders")
    seen: list[tuple[PlaceOrder, Context]] = []
    handled = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        seen.append((cmd, ctx))
        handled.set()

    async with bus:
        message_id = await bus.send(PlaceOrder(order_id="o-1", amount=9.5))
        await asyncio.wait_for(handled.wait(), 10)

    cmd, ctx = seen[0]
    assert cmd == PlaceOrder(order_id="o-1", amount=9.5)
    assert ctx.message_id == message_id
    assert ctx.message_type == "contract.PlaceOrder"
    assert ctx.correlation_id == message_id  # a first message correlates with itself
    assert ctx.conversation_id == message_id
    assert ctx.causation_id is None
    assert ctx.attempt == 1
    assert ctx.service == "orders"


async def test_messages_from_a_handler_inherit_correlation_and_causation(make_bus):
    bus = make_bus("orders")
    shipped: list[Context] = []
    published: list[Context] = []
    done = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(ShipOrder(order_id=cmd.order_id))
        await ctx.publish(OrderPlaced(order_id=cmd.order_id))

    @bus.command_handler
    async def ship(cmd: ShipOrder, ctx: Context) -> None:
        shipped.append(ctx)
        if published:
            done.set()

    @bus.event_subscriber
    async def on_placed(evt: OrderPlaced, ctx: Context) -> None:
        published.append(ctx)
        if shipped:
            done.set()

    async with bus:
        first = await bus.send(PlaceOrder(order_id="o-2", amount=1.0), correlation_id="order-o-2")
        await asyncio.wait_for(done.wait(), 10)

    for ctx in (shipped[0], published[0]):
        assert ctx.correlation_id == "order-o-2"
        assert ctx.causation_id == first
        assert ctx.conversation_id == first
        assert ctx.message_id != first


async def test_command_sent_before_its_handler_starts_waits_for_it(make_bus):
    sender = make_bus("web")
    async with sender:
        await sender.send(PlaceOrder(order_id="early", amount=2.0))

    handler_bus = make_bus("orders")
    got: list[str] = []
    handled = asyncio.Event()

    @handler_bus.command_handler
    async def place(cmd: PlaceOrder) -> None:  # the context parameter is optional
        got.append(cmd.order_id)
        handled.set()

    async with handler_bus:
        await asyncio.wait_for(handled.wait(), 10)
    assert got == ["early"]


async def test_competing_instances_handle_each_command_once(make_bus):
    handled: list[tuple[str, str]] = []
    buses = [make_bus("orders") for _ in range(2)]

    def register(bus, instance: str) -> None:
        @bus.command_handler
        async def place(cmd: PlaceOrder) -> None:
            handled.append((instance, cmd.order_id))

    for index, bus in enumerate(buses):
        register(bus, f"i{index}")

    total = 40
    for bus in buses:
        await bus.start()
    for n in range(total):
        await buses[0].send(PlaceOrder(order_id=f"o-{n}", amount=1.0))
    await eventually(lambda: len(handled) >= total, what="all commands handled")
    for bus in buses:
        await bus.stop()
    assert sorted(order for _, order in handled) == sorted(f"o-{n}" for n in range(total))


async def test_prefetch_bounds_concurrent_handlers(make_bus):
    bus = make_bus("orders")
    running = 0
    peak = 0
    finished = 0
    release = asyncio.Event()

    @bus.command_handler(prefetch=3)
    async def place(cmd: PlaceOrder) -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        finished += 1

    async with bus:
        for n in range(10):
            await bus.send(PlaceOrder(order_id=str(n), amount=1.0))
        await eventually(lambda: running == 3, what="three handlers running")
        release.set()
        await eventually(lambda: finished == 10, what="all handled")
    assert peak == 3


async def test_wrong_method_raises_type_error_naming_the_right_one(make_bus):
    bus = make_bus("orders")
    async with bus:
        with pytest.raises(TypeError, match=r"publish\(\)"):
            await bus.send(OrderPlaced(order_id="x"))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"send\(\)"):
            await bus.publish(PlaceOrder(order_id="x", amount=1.0))  # type: ignore[arg-type]
