"""Start, graceful stop, and misuse of the lifecycle. Every transport."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import uvloop

from busline import BusNotRunningError, Context, RegistrationError
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


async def test_start_hooks_run_before_any_handler_sees_a_message(make_bus, tmp_path):
    declaring = make_bus("orders")

    @declaring.command_handler
    async def declare(cmd: PlaceOrder) -> None:
        raise AssertionError("nothing is sent while this bus runs")

    async with declaring:  # declares the command's queue, then leaves it
        pass
    sender = make_bus("shop")
    async with sender:
        for n in range(5):
            await sender.send(PlaceOrder(order_id=f"o-{n}", amount=1.0))

    # The messages wait in the queue: the handler would take them at once if it started first.
    orders = make_bus("orders", store=f"sqlite:///{tmp_path / 'orders.db'}")
    seen: list[str] = []

    @orders.on_start
    async def create_tables() -> None:
        async with orders.transaction() as tx:
            await tx.db.execute("CREATE TABLE placed (order_id TEXT PRIMARY KEY)")
        seen.append("tables created")

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.db.execute("INSERT INTO placed (order_id) VALUES (?)", (cmd.order_id,))
        seen.append(cmd.order_id)

    async with orders:
        await eventually(lambda: len(seen) == 6, what="the five orders handled")
        async with orders.transaction() as tx, tx.db.execute("SELECT COUNT(*) FROM placed") as cur:
            (stored,) = await cur.fetchone()
    assert seen[0] == "tables created"
    assert stored == 5


async def test_a_failing_start_hook_stops_the_start_and_no_stop_hook_runs(make_bus):
    bus = make_bus("orders")
    ran: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        ran.append("handler")

    @bus.on_start
    def first() -> None:  # a plain function is a hook too
        ran.append("first")

    @bus.on_start
    async def broken() -> None:
        raise RuntimeError("cannot reach the pricing service")

    @bus.on_start
    async def never() -> None:
        ran.append("never")

    @bus.on_stop
    async def cleanup() -> None:
        ran.append("cleanup")

    with pytest.raises(RuntimeError, match="pricing service"):
        await bus.start()
    assert bus.state == "stopped"
    assert ran == ["first"]
    with pytest.raises(BusNotRunningError):
        await bus.send(PlaceOrder(order_id="x", amount=1.0))


async def test_stop_hooks_run_after_the_handlers_finish_with_the_store_still_open(
    make_bus, tmp_path
):
    store = f"sqlite:///{tmp_path / 'orders.db'}"
    bus = make_bus("orders", store=store)
    order: list[str] = []
    gate = asyncio.Event()
    in_flight = asyncio.Event()

    @bus.on_start
    async def create_tables() -> None:
        async with bus.transaction() as tx:
            await tx.db.execute("CREATE TABLE audit (line TEXT NOT NULL)")

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        in_flight.set()
        await gate.wait()
        order.append("handler finished")

    @bus.on_stop
    async def written_last() -> None:
        async with bus.transaction() as tx:
            await tx.db.execute("INSERT INTO audit (line) VALUES ('stopped')")
        order.append("second hook")

    @bus.on_stop
    async def failing() -> None:
        order.append("first hook")
        raise RuntimeError("the stop goes on")

    await bus.start()
    await bus.send(PlaceOrder(order_id="o-1", amount=1.0))
    await asyncio.wait_for(in_flight.wait(), 10)
    stopping = asyncio.create_task(bus.stop())
    await eventually(lambda: bus.state == "stopping", what="the stop under way")
    assert order == []
    gate.set()
    await asyncio.wait_for(stopping, 15)
    assert order == ["handler finished", "first hook", "second hook"]
    assert bus.state == "stopped"

    reopened = make_bus("orders", store=store)
    async with (
        reopened,
        reopened.transaction() as tx,
        tx.db.execute("SELECT line FROM audit") as cursor,
    ):
        assert await cursor.fetchall() == [("stopped",)]


async def test_hooks_are_added_before_the_start(make_bus):
    bus = make_bus("orders")
    with pytest.raises(TypeError, match="takes a function"):
        bus.on_start("create tables")  # type: ignore[arg-type]
    async with bus:
        with pytest.raises(RegistrationError, match="before it starts"):
            bus.on_stop(lambda: None)


async def test_the_loop_is_the_one_the_test_names(request):
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uvloop.Loop) == ("uvloop" in request.node.name)
