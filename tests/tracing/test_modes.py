"""Parent or link, configurable per bus and per handler. Every transport."""

from __future__ import annotations

import pytest

from busline import Context, RegistrationError
from tests.tracing.messages import PaymentCaptured, PlaceOrder
from tests.tracing.support import is_child, links_to


async def test_bus_can_trace_events_as_children(make_bus, traced, spans):
    bus = make_bus("inventory", trace_events_as="child", **traced)

    @bus.event_subscriber
    async def on_captured(evt: PaymentCaptured) -> None:
        pass

    async with bus:
        await bus.publish(PaymentCaptured(order_id="o-1"))
        await spans.wait_for(
            "publish shop.PaymentCaptured", "process shop.PaymentCaptured:inventory.on_captured"
        )

    publish = spans.one("publish shop.PaymentCaptured")
    process = spans.one("process shop.PaymentCaptured:inventory.on_captured")
    assert is_child(process, publish)
    assert links_to(process, publish)


async def test_bus_can_trace_commands_as_links(make_bus, traced, spans):
    bus = make_bus("checkout", trace_commands_as="link", **traced)

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        pass

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await spans.wait_for("send shop.PlaceOrder", "process shop.PlaceOrder")

    send = spans.one("send shop.PlaceOrder")
    process = spans.one("process shop.PlaceOrder")
    assert process.parent is None
    assert process.context.trace_id != send.context.trace_id
    assert links_to(process, send)


async def test_handler_option_overrides_the_bus(make_bus, traced, spans):
    bus = make_bus("shop", **traced)

    @bus.command_handler(trace_as="link")
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.publish(PaymentCaptured(order_id=cmd.order_id))

    @bus.event_subscriber(trace_as="child")
    async def on_captured(evt: PaymentCaptured) -> None:
        pass

    @bus.event_subscriber(PaymentCaptured, name="audit")
    async def audit(evt: PaymentCaptured) -> None:
        pass

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await spans.wait_for(
            "process shop.PaymentCaptured:shop.on_captured",
            "process shop.PaymentCaptured:shop.audit",
            "publish shop.PaymentCaptured",
        )

    send = spans.one("send shop.PlaceOrder")
    place_span = spans.one("process shop.PlaceOrder")
    publish = spans.one("publish shop.PaymentCaptured")
    child = spans.one("process shop.PaymentCaptured:shop.on_captured")
    linked = spans.one("process shop.PaymentCaptured:shop.audit")
    assert place_span.parent is None and links_to(place_span, send)
    assert is_child(publish, place_span)
    assert is_child(child, publish)
    assert linked.parent is None and links_to(linked, publish)


def test_invalid_modes_are_refused_early():
    from busline import Bus

    with pytest.raises(ValueError, match="child"):
        Bus("svc", trace_events_as="sibling")  # type: ignore[arg-type]
    bus = Bus("svc")
    with pytest.raises(RegistrationError, match="trace_as"):

        @bus.command_handler(trace_as="parent")
        async def place(cmd: PlaceOrder) -> None:
            pass
