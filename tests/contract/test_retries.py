"""Recoverability: immediate retries, delayed retries held by the transport, the error queue with
its reasons, and replay. Every transport: the memory transport runs on a virtual clock, RabbitMQ
on short real delays held by its TTL queues."""

from __future__ import annotations

import asyncio

import pytest

from busline import Context, Middleware, PublishError, Reject, RetryPolicy
from busline.errorqueue import open_error_queue
from busline.testing import VirtualClock
from tests.contract.messages import PlaceOrder, ShipOrder
from tests.support import eventually, headers_of, take_from_queue


class Time:
    """Delays for this transport: virtual (advanced by tick) in memory, short and real on AMQP."""

    def __init__(self, url: str) -> None:
        self.clock = VirtualClock() if url.startswith("memory://") else None
        self.delays = (30.0, 600.0) if self.clock else (0.2, 0.4)

    def options(self) -> dict[str, object]:
        return {"clock": self.clock} if self.clock else {}

    def tick(self) -> None:
        if self.clock is not None:
            self.clock.advance(3600)


@pytest.fixture
def time(bus_url: str) -> Time:
    return Time(bus_url)


async def test_handler_failing_twice_then_succeeding_has_its_effect_once(make_bus):
    bus = make_bus("orders", retry=RetryPolicy(immediate=3, delays=()))
    attempts: list[int] = []
    shipped: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        await ctx.send(ShipOrder(order_id=f"{cmd.order_id}-try{ctx.attempt}"))
        if len(attempts) < 3:
            raise ConnectionError("database blip")

    @bus.command_handler
    async def ship(cmd: ShipOrder) -> None:
        shipped.append(cmd.order_id)

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1", amount=1.0))
        await eventually(lambda: shipped != [], what="the order shipped")
    assert attempts == [1, 2, 3]
    assert shipped == ["o-1-try3"], "a failed attempt's outgoing message leaked"


async def test_always_failing_message_is_parked_after_exactly_the_configured_attempts(
    make_bus, bus_url, time
):
    policy = RetryPolicy(immediate=1, delays=time.delays)
    bus = make_bus("orders", retry=policy, **time.options())
    attempts: list[int] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError(f"still broken on attempt {ctx.attempt}")

    async with bus:
        message_id = await bus.send(PlaceOrder(order_id="o-1", amount=1.0))

        def parked_or_tick() -> bool:
            time.tick()
            return len(attempts) >= policy.max_attempts

        await eventually(parked_or_tick, what="every attempt made")
        [parked] = await take_from_queue(bus_url, "busline.error", 1)

    assert attempts == list(range(1, policy.max_attempts + 1)) == [1, 2, 3, 4, 5, 6]
    assert parked.message_id == message_id
    headers = headers_of(parked)
    assert headers["busline-attempts"] == 6
    assert headers["busline-error-type"] == "RuntimeError"
    assert headers["busline-error-message"] == "still broken on attempt 6"
    assert headers["busline-error-reason"] == "handler-error"
    assert headers["busline-original-queue"] == "contract.PlaceOrder"
    assert headers["busline-handler"] == "place"
    assert headers["busline-service"] == "orders"
    assert "Traceback" in headers["busline-error-traceback"]


async def test_reject_and_configured_exceptions_skip_retries(make_bus, bus_url):
    policy = RetryPolicy(immediate=3, delays=(60.0,), non_retryable=(KeyError,))
    bus = make_bus("orders", retry=policy)
    calls: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        calls.append(cmd.order_id)
        if cmd.order_id == "reject":
            raise Reject("order is malformed")
        raise KeyError("no such customer")

    async with bus:
        await bus.send(PlaceOrder(order_id="reject", amount=1.0))
        await bus.send(PlaceOrder(order_id="keyerror", amount=1.0))
        parked = await take_from_queue(bus_url, "busline.error", 2)

    assert sorted(calls) == ["keyerror", "reject"]
    reasons = sorted(headers_of(m)["busline-error-reason"] for m in parked)
    assert reasons == ["handler-error", "rejected"]
    assert {headers_of(m)["busline-attempts"] for m in parked} == {1}


async def test_poison_body_is_not_retried(make_bus, bus_url):
    bus = make_bus("orders", retry=RetryPolicy(immediate=3, delays=(60.0,)))
    calls = 0

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        nonlocal calls
        calls += 1

    async with bus:
        assert bus.transport is not None
        from tests.contract.test_failures import raw

        await bus.transport.send("contract.PlaceOrder", raw("contract.PlaceOrder", b"{nope"))
        [parked] = await take_from_queue(bus_url, "busline.error", 1)
    assert calls == 0
    assert headers_of(parked)["busline-error-reason"] == "undecodable"


async def test_replay_after_the_fix_processes_the_parked_message(make_bus, bus_url):
    bus = make_bus("orders", retry=RetryPolicy(immediate=0, delays=()))
    fixed = False
    handled: list[tuple[str, int]] = []
    done = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        if not fixed:
            raise RuntimeError("bug")
        handled.append((ctx.message_id, ctx.attempt))
        done.set()

    async with bus:
        message_id = await bus.send(PlaceOrder(order_id="o-1", amount=1.0))
        errors = await open_error_queue(bus_url)
        try:

            async def parked() -> bool:
                return len(await errors.browse()) == 1

            await eventually(parked, what="the message parked")
            [listed] = await errors.browse()
            assert listed.message_id == message_id
            assert listed.exception_type == "RuntimeError"
            assert listed.original_queue == "contract.PlaceOrder"
            fixed = True
            assert await errors.replay([message_id]) == [message_id]
            await asyncio.wait_for(done.wait(), 10)
            assert await errors.browse() == []
        finally:
            await errors.close()
    assert handled == [(message_id, 1)], "replay must reset the attempt counter"


async def test_purge_empties_the_error_queue(make_bus, bus_url):
    bus = make_bus("orders", retry=RetryPolicy(immediate=0, delays=()))

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        raise Reject("no")

    async with bus:
        for n in range(3):
            await bus.send(PlaceOrder(order_id=str(n), amount=1.0))
        errors = await open_error_queue(bus_url)
        try:

            async def all_parked() -> bool:
                return len(await errors.browse()) == 3

            await eventually(all_parked, what="three parked")
            assert await errors.purge() == 3
            assert await errors.browse() == []
        finally:
            await errors.close()


async def test_memory_delay_is_held_by_the_transport_not_the_consumer():
    from busline.transports.memory import broker_for

    from busline import Bus
    from busline.testing import memory_url

    clock = VirtualClock()
    url = memory_url()
    bus = Bus("orders", url, clock=clock, retry=RetryPolicy(immediate=0, delays=(600.0,)))
    attempts: list[int] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first time fails")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1", amount=1.0))
        await eventually(lambda: clock.pending == 1, what="a delayed retry scheduled")
        queue = broker_for(url).queue("contract.PlaceOrder")
        assert len(queue) == 0
        assert all(not consumer.unacked for consumer in queue.consumers)
        clock.advance(599)
        assert attempts == [1]
        clock.advance(1)
        await eventually(lambda: attempts == [1, 2], what="the retry")


class FailFirstPublish(Middleware):
    """A publish path whose first send of a given type is refused, like a broker nack."""

    def __init__(self, wire_name: str) -> None:
        self.wire_name = wire_name
        self.refused = 0

    async def on_publish(self, out, call_next) -> None:
        if out.envelope.message_type == self.wire_name and self.refused == 0:
            self.refused += 1
            raise PublishError("broker refused the message")
        await call_next(out)


async def test_handler_whose_sends_fail_is_retried_later_not_parked(make_bus, bus_url, time):
    refuse = FailFirstPublish("contract.ShipOrder")
    bus = make_bus(
        "orders",
        retry=RetryPolicy(immediate=0, delays=time.delays),
        middleware=[refuse],
        **time.options(),
    )
    placed: list[int] = []
    shipped: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        placed.append(ctx.attempt)
        await ctx.send(ShipOrder(order_id=cmd.order_id))

    @bus.command_handler
    async def ship(cmd: ShipOrder) -> None:
        shipped.append(cmd.order_id)

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1", amount=1.0))

        def shipped_or_tick() -> bool:
            time.tick()
            return shipped == ["o-1"]

        await eventually(shipped_or_tick, what="the order shipped on the delayed retry")
        errors = await open_error_queue(bus_url)
        try:
            assert await errors.browse() == []
        finally:
            await errors.close()
    assert refuse.refused == 1
    assert placed == [1, 2]


async def test_sends_failing_with_no_retries_left_park_the_message(make_bus, bus_url):
    bus = make_bus(
        "orders",
        retry=RetryPolicy(immediate=0, delays=()),
        middleware=[FailFirstPublish("contract.ShipOrder")],
    )

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(ShipOrder(order_id=cmd.order_id))

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1", amount=1.0))
        [parked] = await take_from_queue(bus_url, "busline.error", 1)
    headers = headers_of(parked)
    assert headers["busline-error-type"] == "busline.errors.PublishError"
    assert headers["busline-error-reason"] == "handler-error"
