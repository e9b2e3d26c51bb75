"""Trace context survives the outbox: a message the relay sends long after its handler ran is
still processed in the handler's trace. Both stores, both transports."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from busline import Context
from tests.stores.messages import ChargeCard, PlaceOrder
from tests.support import eventually


async def test_a_relayed_message_stays_in_the_trace_it_was_sent_from(make_store_bus, tables):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    orders = make_store_bus("orders", outage_switch=True, tracer_provider=provider)
    billing = make_store_bus("billing", tracer_provider=provider)
    charged: list[str] = []

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(ChargeCard(order_id=cmd.order_id))

    @billing.command_handler
    async def charge(cmd: ChargeCard) -> None:
        charged.append(cmd.order_id)

    def process_span(kind: str):
        found = [
            span
            for span in exporter.get_finished_spans()
            if span.name.startswith("process") and span.name.endswith(kind)
        ]
        return found[0] if found else None

    try:
        async with orders, billing:
            orders.transport.down = True  # the handler's own dispatch fails: the relay sends it
            await billing.send(PlaceOrder(order_id="o-1"))
            await eventually(lambda: process_span("PlaceOrder") is not None, what="handled")
            assert charged == []
            orders.transport.down = False
            await eventually(lambda: charged == ["o-1"], what="the relay to send the charge")
            await eventually(lambda: process_span("ChargeCard") is not None, what="its span")
        place_span, charge_span = process_span("PlaceOrder"), process_span("ChargeCard")
        assert charge_span.context.trace_id == place_span.context.trace_id
    finally:
        provider.shutdown()
