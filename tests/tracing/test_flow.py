"""One order's journey as traces, on every transport: checkout → payment → inventory.

Commands continue their sender's trace (the process span is a child of the send span); the event
starts a new trace linked to its publish span; every span has the attributes and kind the
OpenTelemetry messaging conventions ask for.
"""

from __future__ import annotations

import asyncio

from opentelemetry import baggage, context, trace
from opentelemetry.trace import SpanKind, StatusCode

from busline import Context
from tests.tracing.messages import ChargePayment, PaymentCaptured, PlaceOrder, ReserveStock
from tests.tracing.support import attrs, is_child, links_to

SEND_PLACE = "send shop.PlaceOrder"
PROCESS_PLACE = "process shop.PlaceOrder"
SEND_CHARGE = "send shop.ChargePayment"
PROCESS_CHARGE = "process shop.ChargePayment"
PUBLISH_CAPTURED = "publish shop.PaymentCaptured"
PROCESS_CAPTURED = "process shop.PaymentCaptured:inventory.on_payment_captured"
SEND_RESERVE = "send shop.ReserveStock"
PROCESS_RESERVE = "process shop.ReserveStock"
ALL = (
    SEND_PLACE,
    PROCESS_PLACE,
    SEND_CHARGE,
    PROCESS_CHARGE,
    PUBLISH_CAPTURED,
    PROCESS_CAPTURED,
    SEND_RESERVE,
    PROCESS_RESERVE,
)


def build_shop(make_bus, traced):
    """Four services on one broker; returns the buses and what the handlers saw."""
    web = make_bus("web", **traced)
    checkout = make_bus("checkout", **traced)
    payment = make_bus("payment", **traced)
    inventory = make_bus("inventory", **traced)
    seen: dict[str, object] = {}
    reserved = asyncio.Event()

    @checkout.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        seen["baggage"] = baggage.get_baggage("tenant")
        await ctx.send(ChargePayment(order_id=cmd.order_id, amount=12.5))

    @payment.command_handler
    async def charge(cmd: ChargePayment, ctx: Context) -> None:
        await ctx.publish(PaymentCaptured(order_id=cmd.order_id))

    @inventory.event_subscriber
    async def on_payment_captured(evt: PaymentCaptured, ctx: Context) -> None:
        await ctx.send(ReserveStock(order_id=evt.order_id))

    tracer = trace.get_tracer("inventory-app", tracer_provider=traced["tracer_provider"])

    @inventory.command_handler
    async def reserve(cmd: ReserveStock, ctx: Context) -> None:
        with tracer.start_as_current_span("update stock table"):
            pass
        seen["reserve_ctx"] = ctx
        reserved.set()

    return (web, checkout, payment, inventory), seen, reserved


async def test_order_flow_builds_the_expected_span_tree_and_links(make_bus, traced, spans, bus_url):
    buses, seen, reserved = build_shop(make_bus, traced)
    web = buses[0]
    app_tracer = spans.provider.get_tracer("web-app")
    for bus in buses:
        await bus.start()

    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with app_tracer.start_as_current_span("POST /orders") as http_span:
            first_id = await web.send(PlaceOrder(order_id="o-1"), correlation_id="order-o-1")
    finally:
        context.detach(token)
    await asyncio.wait_for(reserved.wait(), 20)
    await spans.wait_for(*ALL)  # a send span may end after its consumer's (broker confirm)

    http = spans.one("POST /orders")
    send_place = spans.one(SEND_PLACE)
    process_place = spans.one(PROCESS_PLACE)
    send_charge = spans.one(SEND_CHARGE)
    process_charge = spans.one(PROCESS_CHARGE)
    publish_captured = spans.one(PUBLISH_CAPTURED)
    process_captured = spans.one(PROCESS_CAPTURED)
    send_reserve = spans.one(SEND_RESERVE)
    process_reserve = spans.one(PROCESS_RESERVE)
    inner = spans.one("update stock table")
    assert http.context.span_id == http_span.get_span_context().span_id

    # Commands: one trace from the HTTP request down to the payment, parent by parent.
    assert is_child(send_place, http)
    assert is_child(process_place, send_place)
    assert is_child(send_charge, process_place)
    assert is_child(process_charge, send_charge)
    assert is_child(publish_captured, process_charge)
    # ...and each process span also links to its message's creation context, as asked.
    assert links_to(process_place, send_place)
    assert links_to(process_charge, send_charge)

    # The event: a new trace for the subscriber, linked to the publish span.
    assert process_captured.parent is None
    assert process_captured.context.trace_id != publish_captured.context.trace_id
    assert links_to(process_captured, publish_captured)
    # Within the subscriber's trace, its command is again parent-child.
    assert is_child(send_reserve, process_captured)
    assert is_child(process_reserve, send_reserve)
    # The handler's own spans are children of its process span.
    assert is_child(inner, process_reserve)

    # Baggage travels with the message.
    assert seen["baggage"] == "acme"

    # Kinds.
    for span in (send_place, send_charge, publish_captured, send_reserve):
        assert span.kind is SpanKind.PRODUCER, span.name
    for span in (process_place, process_charge, process_captured, process_reserve):
        assert span.kind is SpanKind.CONSUMER, span.name
        assert span.status.status_code is StatusCode.UNSET

    system = "busline-memory" if bus_url.startswith("memory://") else "rabbitmq"

    # Producer attributes (messaging semantic conventions + busline's own).
    place_attrs = attrs(send_place)
    assert place_attrs["messaging.system"] == system
    assert place_attrs["messaging.operation.type"] == "send"
    assert place_attrs["messaging.operation.name"] == "send"
    assert place_attrs["messaging.destination.name"] == "shop.PlaceOrder"
    assert place_attrs["messaging.message.id"] == first_id
    assert place_attrs["messaging.message.conversation_id"] == "order-o-1"
    assert place_attrs["busline.message.kind"] == "command"
    assert place_attrs["busline.message.type"] == "shop.PlaceOrder"
    assert place_attrs["busline.service"] == "web"
    assert "error.type" not in place_attrs

    published = attrs(publish_captured)
    assert published["messaging.operation.type"] == "send"
    assert published["messaging.operation.name"] == "publish"
    assert published["messaging.destination.name"] == "shop.PaymentCaptured"
    assert published["busline.message.kind"] == "event"
    assert published["busline.service"] == "payment"
    assert "messaging.rabbitmq.destination.routing_key" not in published  # fanout: none

    # Consumer attributes.
    processed = attrs(process_place)
    assert processed["messaging.system"] == system
    assert processed["messaging.operation.type"] == "process"
    assert processed["messaging.operation.name"] == "process"
    assert processed["messaging.destination.name"] == "shop.PlaceOrder"
    assert processed["messaging.consumer.group.name"] == "shop.PlaceOrder"
    assert processed["messaging.message.id"] == first_id
    assert processed["messaging.message.conversation_id"] == "order-o-1"
    assert processed["busline.message.kind"] == "command"
    assert processed["busline.message.type"] == "shop.PlaceOrder"
    assert processed["busline.service"] == "checkout"
    assert processed["busline.handler"] == "place"
    assert processed["busline.message.attempt"] == 1

    event_processed = attrs(process_captured)
    assert event_processed["messaging.destination.name"] == (
        "shop.PaymentCaptured:inventory.on_payment_captured"
    )
    assert event_processed["messaging.consumer.group.name"] == "inventory.on_payment_captured"
    assert event_processed["busline.message.kind"] == "event"
    assert event_processed["busline.handler"] == "on_payment_captured"
    # The conversation (correlation id) runs through the whole journey, traces or not.
    assert event_processed["messaging.message.conversation_id"] == "order-o-1"
    assert attrs(process_reserve)["messaging.message.conversation_id"] == "order-o-1"

    if system == "rabbitmq":
        assert place_attrs["messaging.rabbitmq.destination.routing_key"] == "shop.PlaceOrder"
        assert processed["messaging.rabbitmq.destination.routing_key"] == "shop.PlaceOrder"
        assert place_attrs["server.address"] == "127.0.0.1"
        assert isinstance(place_attrs["server.port"], int)
    else:
        assert not any(key.startswith("messaging.rabbitmq.") for key in place_attrs)
        assert "server.address" not in place_attrs

    # Trace context travels in W3C headers; busline's private origin headers never do.
    headers = seen["reserve_ctx"].headers
    assert "traceparent" in headers
    assert not any(key.startswith("busline-origin-") for key in headers)


async def test_every_span_name_is_operation_then_destination(make_bus, traced, spans):
    buses, _, reserved = build_shop(make_bus, traced)
    for bus in buses:
        await bus.start()
    await buses[0].send(PlaceOrder(order_id="o-2"))
    await asyncio.wait_for(reserved.wait(), 20)
    await spans.wait_for(*ALL)  # a send span may end after its consumer's (broker confirm)
    for span in spans.all():
        if span.instrumentation_scope.name != "busline":
            continue
        operation = attrs(span)["messaging.operation.name"]
        destination = attrs(span)["messaging.destination.name"]
        assert span.name == f"{operation} {destination}"
