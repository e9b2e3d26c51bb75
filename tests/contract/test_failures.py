"""Nothing is lost: failures and bad input go to the error queue with their reason, and the
consumer keeps running. Every transport."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from busline import NO_RETRIES, Context, Envelope, MessageTooLargeError
from busline.envelope import new_message_id
from tests.contract.messages import OrderPlaced, PlaceOrder, ShipOrder
from tests.support import body_of, eventually, headers_of, take_from_queue

ERROR_QUEUE = "busline.error"


def raw(message_type: str, body: bytes) -> Envelope:
    message_id = new_message_id()
    return Envelope(message_id, message_type, body, message_id, message_id)


async def test_failing_handler_parks_message_with_reason_and_sends_nothing(make_bus, bus_url):
    bus = make_bus("orders", retry=NO_RETRIES)
    shipped: list[str] = []
    handled_after = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(ShipOrder(order_id=cmd.order_id))
        if cmd.order_id == "bad":
            raise ValueError("card declined")
        handled_after.set()

    @bus.command_handler
    async def ship(cmd: ShipOrder) -> None:
        shipped.append(cmd.order_id)

    async with bus:
        bad_id = await bus.send(PlaceOrder(order_id="bad", amount=1.0))
        await bus.send(PlaceOrder(order_id="good", amount=1.0))
        await asyncio.wait_for(handled_after.wait(), 10)
        [parked] = await take_from_queue(bus_url, ERROR_QUEUE, 1)
        await eventually(lambda: shipped == ["good"], what="only the good order shipped")

    headers = headers_of(parked)
    assert parked.message_id == bad_id
    assert body_of(parked) == msgspec.json.encode(PlaceOrder(order_id="bad", amount=1.0))
    assert headers["busline-error-reason"] == "handler-error"
    assert headers["busline-error-type"] == "ValueError"
    assert headers["busline-error-message"] == "card declined"
    assert "card declined" in headers["busline-error-traceback"]
    assert headers["busline-original-queue"] == "contract.PlaceOrder"
    assert headers["busline-handler"] == "place"
    assert headers["busline-service"] == "orders"
    assert headers["busline-failed-at"]


@pytest.mark.parametrize(
    ("message_type", "body", "reason"),
    [
        ("contract.PlaceOrder", b"\xff not json", "undecodable"),
        ("contract.PlaceOrder", b'{"order_id": 5}', "schema-mismatch"),
        ("contract.SomethingElse", b"{}", "unknown-type"),
        ("contract.PlaceOrder", b'{"order_id":"' + b"x" * 5000 + b'","amount":1}', "too-large"),
    ],
    ids=["undecodable", "schema", "unknown-type", "too-large"],
)
async def test_bad_input_goes_to_error_queue_and_consumer_keeps_going(
    make_bus, bus_url, message_type, body, reason
):
    bus = make_bus("orders", max_message_size=4096)
    handled: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.append(cmd.order_id)

    async with bus:
        assert bus.transport is not None
        poison = raw(message_type, body)
        await bus.transport.send("contract.PlaceOrder", poison)
        await bus.send(PlaceOrder(order_id="fine", amount=1.0))
        [parked] = await take_from_queue(bus_url, ERROR_QUEUE, 1)
        await eventually(lambda: handled == ["fine"], what="next message handled")

    assert parked.message_id == poison.message_id
    assert body_of(parked) == body
    assert headers_of(parked)["busline-error-reason"] == reason


async def test_sending_an_oversized_message_raises(make_bus):
    bus = make_bus("orders", max_message_size=100)
    async with bus:
        with pytest.raises(MessageTooLargeError):
            await bus.send(PlaceOrder(order_id="x" * 200, amount=1.0))


async def test_failing_subscriber_does_not_affect_other_subscribers(make_bus, bus_url):
    bus = make_bus("billing", retry=NO_RETRIES)
    ok = asyncio.Event()

    @bus.event_subscriber(name="broken")
    async def broken(evt: OrderPlaced) -> None:
        raise RuntimeError("boom")

    @bus.event_subscriber(name="fine")
    async def fine(evt: OrderPlaced) -> None:
        ok.set()

    async with bus:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await asyncio.wait_for(ok.wait(), 10)
        [parked] = await take_from_queue(bus_url, ERROR_QUEUE, 1)
    assert headers_of(parked)["busline-original-queue"] == "billing.broken"
