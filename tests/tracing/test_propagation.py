"""Context across time: messages that leave later than they were created (a handler's messages,
the outbox relay) stay in their trace; a creation context set by the application is respected;
header values arriving as bytes are read. Every transport."""

from __future__ import annotations

import asyncio

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from busline import Context, MessageKind, Middleware, OutgoingMessage
from busline.middleware import PublishNext
from busline.tracing.propagation import EMPTY, HeaderGetter, capture_origin, extract, take_origin
from tests.support import eventually
from tests.tracing.messages import ChargePayment, PlaceOrder
from tests.tracing.support import is_child, links_to


class Outbox(Middleware):
    """Stands in for the store's outbox: while ``diverting``, keeps messages instead of sending."""

    def __init__(self) -> None:
        self.diverting = False
        self.rows: list[OutgoingMessage] = []

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        if self.diverting:
            self.rows.append(out)
            return
        await call_next(out)


async def test_message_prepared_in_a_span_and_sent_later_stays_in_its_trace(
    make_bus, traced, spans
):
    bus = make_bus("web", **traced)
    tracer = spans.provider.get_tracer("web-app")
    handled = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        assert not any(key.startswith("busline-origin-") for key in ctx.headers)
        handled.set()

    async with bus:
        with tracer.start_as_current_span("POST /orders"):
            out = bus.messages.create(PlaceOrder(order_id="o-1"), MessageKind.COMMAND)
        # Later, with nothing current (as in the outbox relay after a restart):
        assert not trace.get_current_span().get_span_context().is_valid
        await bus.publisher.publish_all([out])
        await asyncio.wait_for(handled.wait(), 10)
        await spans.wait_for("process shop.PlaceOrder", "send shop.PlaceOrder")

    http = spans.one("POST /orders")
    send = spans.one("send shop.PlaceOrder")
    assert send.kind is SpanKind.PRODUCER
    assert is_child(send, http)
    assert is_child(spans.one("process shop.PlaceOrder"), send)


async def test_outbox_diverted_message_keeps_one_trace_through_the_relay(make_bus, traced, spans):
    outbox = Outbox()
    checkout = make_bus("checkout", middleware=[outbox], **traced)
    payment = make_bus("payment", **traced)
    charged = asyncio.Event()

    @checkout.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        outbox.diverting = True  # the store writes what the handler sends into its transaction
        await ctx.send(ChargePayment(order_id=cmd.order_id, amount=3.0))

    @payment.command_handler
    async def charge(cmd: ChargePayment) -> None:
        charged.set()

    async with checkout, payment:
        await checkout.send(PlaceOrder(order_id="o-1"))
        await spans.wait_for("process shop.PlaceOrder")
        await eventually(lambda: outbox.rows != [], what="the message in the outbox")
        # The relay, later and from nowhere in particular, publishes what was committed:
        outbox.diverting = False
        await checkout.publisher.publish_all(outbox.rows)
        await asyncio.wait_for(charged.wait(), 10)
        await spans.wait_for("send shop.ChargePayment", count=2)
        await spans.wait_for("process shop.ChargePayment")

    process_place = spans.one("process shop.PlaceOrder")
    handed, relayed = sorted(
        spans.named("send shop.ChargePayment"), key=lambda s: s.start_time or 0
    )
    process_charge = spans.one("process shop.ChargePayment")
    # Handing the message over fixed its creation context (a PRODUCER span in the handler's
    # trace); the relay's send is a CLIENT span in the same trace, linked to it.
    assert handed.kind is SpanKind.PRODUCER and is_child(handed, process_place)
    assert relayed.kind is SpanKind.CLIENT and links_to(relayed, handed)
    assert relayed.context.trace_id == process_place.context.trace_id
    assert is_child(process_charge, handed)


async def test_creation_context_set_by_the_application_is_left_alone(make_bus, traced, spans):
    bus = make_bus("web", **traced)
    tracer = spans.provider.get_tracer("web-app")
    seen: list[dict] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        seen.append(dict(ctx.headers))

    async with bus:
        with tracer.start_as_current_span("custom creation", kind=SpanKind.PRODUCER) as custom:
            headers: dict[str, str] = {}
            from opentelemetry import propagate

            propagate.inject(headers)
        await bus.send(PlaceOrder(order_id="o-1"), headers=headers)
        await spans.wait_for("process shop.PlaceOrder", "send shop.PlaceOrder")

    assert seen[0]["traceparent"] == headers["traceparent"]
    send = spans.one("send shop.PlaceOrder")
    assert send.kind is SpanKind.CLIENT
    assert send.links[0].context.span_id == custom.get_span_context().span_id
    process = spans.one("process shop.PlaceOrder")
    assert process.parent is not None
    assert process.parent.span_id == custom.get_span_context().span_id


def test_header_values_read_as_bytes_or_text(spans):
    tracer = spans.provider.get_tracer("t")
    with tracer.start_as_current_span("origin") as origin:
        headers: dict[str, object] = {}
        capture_origin(headers)  # type: ignore[arg-type]
    context = take_origin(headers)  # type: ignore[arg-type]
    assert headers == {}
    assert context is not None
    restored = trace.get_current_span(context).get_span_context()
    assert restored.trace_id == origin.get_span_context().trace_id
    assert restored.span_id == origin.get_span_context().span_id

    traceparent = (
        f"00-{origin.get_span_context().trace_id:032x}-{origin.get_span_context().span_id:016x}-01"
    )
    as_bytes = {"traceparent": traceparent.encode()}
    assert HeaderGetter().get(as_bytes, "traceparent") == [traceparent]
    extracted = trace.get_current_span(extract(as_bytes)).get_span_context()
    assert extracted.trace_id == origin.get_span_context().trace_id
    assert extract({}) is extract({})  # no headers: the shared empty context, no work


def test_origin_keeps_tracestate_and_baggage(spans):
    from opentelemetry import baggage, context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    remote = SpanContext(0x1234, 0x5678, True, TraceFlags(1), TraceState([("vendor", "value")]))
    current = baggage.set_baggage(
        "tenant", "acme", trace.set_span_in_context(NonRecordingSpan(remote))
    )
    token = context.attach(current)
    try:
        headers: dict[str, object] = {"other": "kept"}
        capture_origin(headers)  # type: ignore[arg-type]
    finally:
        context.detach(token)
    restored = take_origin(headers)  # type: ignore[arg-type]
    assert headers == {"other": "kept"}
    assert restored is not None
    span_context = trace.get_current_span(restored).get_span_context()
    assert (span_context.trace_id, span_context.span_id) == (0x1234, 0x5678)
    assert span_context.trace_state.get("vendor") == "value"
    assert span_context.trace_flags.sampled
    assert baggage.get_baggage("tenant", restored) == "acme"
    # Nothing current: nothing stored; damaged values are ignored, not fatal.
    empty: dict[str, object] = {}
    capture_origin(empty)  # type: ignore[arg-type]
    assert empty == {}
    assert take_origin({"busline-origin-span": "garbage"}) is EMPTY
