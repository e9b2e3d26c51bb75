"""The pipeline's seams: what became of a message reaches middleware as outcomes, and settling
cannot be skipped by a middleware that fails. Every transport."""

from __future__ import annotations

import asyncio

from busline import (
    Envelope,
    FailureReason,
    Middleware,
    Outcome,
    OutcomeKind,
    RetryPolicy,
)
from busline.envelope import new_message_id
from tests.contract.messages import OrderPlaced, PlaceOrder
from tests.support import eventually, headers_of, take_from_queue

ERROR_QUEUE = "busline.error"


class Recorder(Middleware):
    """Keeps every outcome it hears."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def on_outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


class Broken(Middleware):
    """An outcome observer with a bug."""

    def on_outcome(self, outcome: Outcome) -> None:
        raise RuntimeError("observer bug")


async def test_retries_and_the_error_queue_are_reported_as_outcomes(make_bus, bus_url):
    recorder = Recorder()
    bus = make_bus("orders", retry=RetryPolicy(immediate=2, delays=()), middleware=[recorder])

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        raise ValueError(f"declined {cmd.order_id}")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1", amount=1.0))
        await take_from_queue(bus_url, ERROR_QUEUE, 1)

    kinds = [(o.kind, o.attempt) for o in recorder.outcomes]
    assert kinds == [
        (OutcomeKind.RETRY, 1),
        (OutcomeKind.RETRY, 2),
        (OutcomeKind.DEAD_LETTERED, 3),
    ]
    last = recorder.outcomes[-1]
    assert last.reason is FailureReason.HANDLER_ERROR
    assert last.error_type == "ValueError" and str(last.error) == "declined o-1"
    assert last.message == PlaceOrder(order_id="o-1", amount=1.0)


async def test_input_that_never_reaches_the_middleware_is_reported_too(make_bus, bus_url):
    recorder = Recorder()
    bus = make_bus("orders", middleware=[recorder])

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None: ...

    async with bus:
        assert bus.transport is not None
        message_id = new_message_id()
        bad = Envelope(message_id, "contract.PlaceOrder", b"{not json", message_id, message_id)
        await bus.transport.send("contract.PlaceOrder", bad)
        await take_from_queue(bus_url, ERROR_QUEUE, 1)

    [outcome] = recorder.outcomes
    assert outcome.kind is OutcomeKind.DEAD_LETTERED
    assert outcome.reason is FailureReason.UNDECODABLE
    assert outcome.message is None and outcome.error_type == "DecodeError"


async def test_a_failing_observer_never_keeps_a_delivery_from_being_settled(make_bus, bus_url):
    bus = make_bus("orders", retry=RetryPolicy(immediate=1, delays=()), middleware=[Broken()])
    handled = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        if cmd.order_id == "bad":
            raise ValueError("declined")
        handled.set()

    async with bus:
        await bus.send(PlaceOrder(order_id="bad", amount=1.0))
        [parked] = await take_from_queue(bus_url, ERROR_QUEUE, 1)
        await bus.send(PlaceOrder(order_id="good", amount=1.0))
        await asyncio.wait_for(handled.wait(), 10)

    assert headers_of(parked)["busline-error-reason"] == "handler-error"


class FailingScope(Middleware):
    """A middleware whose own code fails around the handler (before it runs)."""

    async def on_consume(self, ctx, call_next):  # type: ignore[no-untyped-def]
        if ctx.message.order_id == "trap":
            raise KeyError("middleware bug")
        await call_next(ctx)


async def test_a_middleware_failure_parks_the_message_and_the_consumer_goes_on(make_bus, bus_url):
    bus = make_bus("orders", retry=RetryPolicy(immediate=0, delays=()), middleware=[FailingScope()])
    handled: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.append(cmd.order_id)

    async with bus:
        await bus.send(PlaceOrder(order_id="trap", amount=1.0))
        [parked] = await take_from_queue(bus_url, ERROR_QUEUE, 1)
        await bus.send(PlaceOrder(order_id="next", amount=1.0))
        await eventually(lambda: handled == ["next"], what="the next order handled")

    assert headers_of(parked)["busline-error-type"] == "KeyError"


async def test_a_body_nested_too_deeply_is_parked_with_its_reason(make_bus, bus_url):
    recorder = Recorder()
    bus = make_bus("orders", middleware=[recorder])
    handled: list[str] = []

    @bus.event_subscriber
    async def on_placed(evt: OrderPlaced) -> None:
        handled.append(evt.order_id)

    async with bus:
        assert bus.transport is not None
        message_id = new_message_id()
        deep = b'{"order_id": "o-1", "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        bad = Envelope(message_id, "contract.OrderPlaced", deep, message_id, message_id)
        await bus.transport.publish("contract.OrderPlaced", bad)
        await bus.publish(OrderPlaced(order_id="o-2"))
        [parked] = await take_from_queue(bus_url, ERROR_QUEUE, 1)
        await eventually(lambda: handled == ["o-2"], what="the valid event handled")

    assert headers_of(parked)["busline-error-reason"] == "too-deep"
    [outcome] = recorder.outcomes
    assert outcome.reason is FailureReason.TOO_DEEP
