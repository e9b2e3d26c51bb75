"""busline.testing.join: waiting, without polling, until an in-process broker is quiet.

Real buses on fresh memory:// brokers; no sleeps, no polling: every wait here is join itself.
"""

from __future__ import annotations

import asyncio

import pytest
from busline.transports.memory import brokers, quiescence

from busline import NO_RETRIES, Bus, Command, Context, Event, RetryPolicy
from busline.errorqueue import open_error_queue
from busline.testing import VirtualClock, join, memory_url


class PlaceOrder(Command, wire_name="join.PlaceOrder"):
    order_id: str


class ShipOrder(Command, wire_name="join.ShipOrder"):
    order_id: str


class OrderShipped(Event, wire_name="join.OrderShipped"):
    order_id: str


class Unhandled(Command, wire_name="join.Unhandled"):
    order_id: str


async def test_join_waits_for_a_whole_chain_across_buses():
    url = memory_url()
    orders, warehouse, mail = Bus("orders", url), Bus("warehouse", url), Bus("mail", url)
    shipped: list[str] = []
    emailed: list[str] = []
    invoiced: list[str] = []

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(ShipOrder(order_id=cmd.order_id))

    @warehouse.command_handler
    async def ship(cmd: ShipOrder, ctx: Context) -> None:
        shipped.append(cmd.order_id)
        await ctx.publish(OrderShipped(order_id=cmd.order_id))

    @mail.event_subscriber
    async def email(evt: OrderShipped) -> None:
        emailed.append(evt.order_id)

    @orders.event_subscriber
    async def invoice(evt: OrderShipped) -> None:
        invoiced.append(evt.order_id)

    async with orders, warehouse, mail:
        ids = [f"o-{n}" for n in range(20)]
        for order_id in ids:
            await orders.send(PlaceOrder(order_id=order_id))
        await join(url)
        assert sorted(shipped) == sorted(emailed) == sorted(invoiced) == sorted(ids)
        quiet = quiescence(url)
        assert quiet is not None and quiet.is_quiet() and quiet.busy() == []


async def test_join_accepts_a_bus_and_returns_once_a_failure_is_parked():
    url = memory_url()
    bus = Bus("orders", url, retry=NO_RETRIES)
    attempts: list[int] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("out of stock")

    async with bus:
        parked_id = await bus.send(PlaceOrder(order_id="o-1"))
        await join(bus)  # the error queue has no consumer: the parked message does not count
        assert attempts == [1]
        errors = await open_error_queue(url)
        try:
            assert [m.message_id for m in await errors.browse()] == [parked_id]
        finally:
            await errors.close()


async def test_join_on_an_idle_broker_returns_at_once():
    url = memory_url()
    before = set(brokers())
    await join(url)  # no broker of that name: it holds nothing, and none is created
    assert set(brokers()) == before

    bus = Bus("orders", url)

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        raise AssertionError("nothing was sent")

    async with bus:
        await asyncio.wait_for(join(bus, timeout=None), 1.0)


async def test_messages_nobody_consumes_do_not_hold_join_up():
    url = memory_url()
    bus = Bus("orders", url)

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(Unhandled(order_id=cmd.order_id))  # no bus handles it: it waits

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await join(url)
        assert len(brokers()[url.removeprefix("memory://")].queue("join.Unhandled")) == 1


async def test_a_delayed_retry_waits_for_the_clock_and_join_again_after_advancing():
    url = memory_url()
    clock = VirtualClock()
    bus = Bus("orders", url, clock=clock, retry=RetryPolicy(immediate=0, delays=(60.0,)))
    attempts: list[int] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("database blip")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await join(url)  # the retry waits on the virtual clock, which join does not move
        assert attempts == [1] and clock.pending == 1
        clock.advance(60)
        await join(url)
        assert attempts == [1, 2]


async def test_join_times_out_naming_the_busy_queue():
    url = memory_url()
    bus = Bus("orders", url)
    release = asyncio.Event()
    started = asyncio.Event()
    done: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        started.set()
        await release.wait()
        done.append(cmd.order_id)

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await started.wait()
        with pytest.raises(TimeoutError, match=r"join\.PlaceOrder \(1 unsettled, 0 ready\)"):
            await join(url, timeout=0.05)
        release.set()  # let the handler finish, so the bus stops cleanly
        await join(url)
        assert done == ["o-1"]
    quiet = quiescence(url)
    assert quiet is None or quiet.busy() == []


async def test_join_with_a_store_covers_messages_sent_after_the_commit(tmp_path):
    pytest.importorskip("aiosqlite")
    url = memory_url()
    orders = Bus("orders", url, store=f"sqlite:///{tmp_path}/orders.db")
    warehouse = Bus("warehouse", url)
    shipped: list[str] = []

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(ShipOrder(order_id=cmd.order_id))  # an outbox row, sent after commit

    @warehouse.command_handler
    async def ship(cmd: ShipOrder) -> None:
        shipped.append(cmd.order_id)

    async with orders, warehouse:
        await orders.send(PlaceOrder(order_id="o-1"))
        await join(url)
        assert shipped == ["o-1"]


async def test_join_refuses_a_broker_it_cannot_see():
    with pytest.raises(ValueError, match="memory:// brokers only"):
        await join("amqp://guest:guest@localhost/")
