"""In-process brokers live as long as they are used or hold messages, no longer."""

from __future__ import annotations

from busline.transports.memory import brokers

from busline import Bus, Context, Reject, RetryPolicy
from busline.errorqueue import open_error_queue
from busline.testing import VirtualClock, memory_url
from tests.contract.messages import PlaceOrder
from tests.support import eventually


def _name(url: str) -> str:
    return url.removeprefix("memory://")


async def _one_bus_round_trip(url: str, order_id: str) -> None:
    bus = Bus("orders", url)
    handled: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        handled.append(cmd.order_id)

    async with bus:
        await bus.send(PlaceOrder(order_id=order_id, amount=1.0))
        await eventually(lambda: handled == [order_id], what="the order handled")
        assert _name(url) in brokers()


async def test_buses_on_fresh_urls_leave_no_brokers_behind():
    before = set(brokers())
    for n in range(50):
        url = memory_url("leak")
        await _one_bus_round_trip(url, f"o-{n}")
        errors = await open_error_queue(url)  # an admin on an empty broker changes nothing
        await errors.close()
        await errors.close()  # closing twice releases once
    assert set(brokers()) == before


async def test_a_command_sent_before_its_handler_starts_keeps_its_broker():
    url = memory_url()
    async with Bus("shop", url) as sender:
        await sender.send(PlaceOrder(order_id="early", amount=1.0))
    assert _name(url) in brokers(), "the waiting command was dropped with its broker"

    receiver = Bus("orders", url)
    handled: list[str] = []

    @receiver.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        handled.append(cmd.order_id)

    async with receiver:
        await eventually(lambda: handled == ["early"], what="the early command handled")
    assert _name(url) not in brokers()


async def test_parked_messages_wait_for_busline_errors():
    url = memory_url()
    bus = Bus("orders", url, retry=RetryPolicy(immediate=0, delays=()))

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        raise Reject("malformed")

    async with bus:
        parked_id = await bus.send(PlaceOrder(order_id="bad", amount=1.0))
        await eventually(
            lambda: len(brokers()[_name(url)].queue("busline.error")) == 1, what="parked"
        )
    assert _name(url) in brokers()
    errors = await open_error_queue(url)
    try:
        assert [m.message_id for m in await errors.browse()] == [parked_id]
        assert await errors.purge() == 1
    finally:
        await errors.close()
    assert _name(url) not in brokers()


async def test_a_delayed_retry_keeps_its_broker_until_it_is_due():
    clock = VirtualClock()
    url = memory_url()
    bus = Bus("orders", url, clock=clock, retry=RetryPolicy(immediate=0, delays=(60.0,)))

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        raise RuntimeError("always fails")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1", amount=1.0))
        await eventually(lambda: clock.pending == 1, what="a delayed retry scheduled")
    broker = brokers()[_name(url)]
    assert broker.users == 0 and broker.delayed == 1
    clock.advance(60)
    assert broker.delayed == 0 and len(broker.queue("contract.PlaceOrder")) == 1
    assert brokers()[_name(url)] is broker
