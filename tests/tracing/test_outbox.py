"""Through the transactional outbox (SQLite store), on every transport: a message a handler sends
is stored with the context it was created in, so whether the bus sends it right after the commit
or the relay sends it later, its send span stays in the handler's trace."""

from __future__ import annotations

import asyncio

from opentelemetry.trace import SpanKind, StatusCode

from busline import Context, Middleware, OutgoingMessage, StoreSettings
from busline.middleware import PublishNext
from tests.tracing.messages import ChargePayment, PlaceOrder
from tests.tracing.support import attrs, is_child

FAST = StoreSettings(relay_interval=0.02, relay_max_backoff=0.1)


class BrokerBlip(Middleware):
    """Fails the first publish of ``ChargePayment``, as an unreachable broker would."""

    def __init__(self) -> None:
        self.failed = False

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        if out.destination == "shop.ChargePayment" and not self.failed:
            self.failed = True
            raise ConnectionError("broker unreachable")
        await call_next(out)


async def test_relay_sends_in_the_handlers_trace_after_a_failed_dispatch(
    make_bus, traced, spans, tmp_path
):
    store = f"sqlite:///{tmp_path}/checkout.db"
    checkout = make_bus(
        "checkout", store=store, store_settings=FAST, middleware=[BrokerBlip()], **traced
    )
    payment = make_bus("payment", **traced)
    charged = asyncio.Event()

    @checkout.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(ChargePayment(order_id=cmd.order_id, amount=9.0))

    @payment.command_handler
    async def charge(cmd: ChargePayment) -> None:
        charged.set()

    async with payment, checkout:
        await checkout.send(PlaceOrder(order_id="o-1"))
        await asyncio.wait_for(charged.wait(), 20)
        await spans.wait_for("send shop.ChargePayment", count=2)
        await spans.wait_for("process shop.ChargePayment", "process shop.PlaceOrder")

    process_place = spans.one("process shop.PlaceOrder")
    failed, relayed = sorted(
        spans.named("send shop.ChargePayment"), key=lambda s: s.start_time or 0
    )
    process_charge = spans.one("process shop.ChargePayment")
    # The handler committed (its process span succeeded); the send right after the commit failed.
    assert process_place.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)["error.type"] == "ConnectionError"
    # The relay's send, later and from its own task, is still the handler's child...
    assert relayed.kind is SpanKind.PRODUCER
    assert relayed.status.status_code is StatusCode.UNSET
    assert is_child(relayed, process_place)
    assert is_child(failed, process_place)
    # ...and the payment continues that one trace.
    assert is_child(process_charge, relayed)


async def test_transaction_outside_a_handler_keeps_the_callers_trace(
    make_bus, traced, spans, tmp_path
):
    web = make_bus("web", store=f"sqlite:///{tmp_path}/web.db", store_settings=FAST, **traced)
    checkout = make_bus("checkout", **traced)
    placed = asyncio.Event()

    @checkout.command_handler
    async def place(cmd: PlaceOrder) -> None:
        placed.set()

    tracer = spans.provider.get_tracer("web-app")
    async with checkout, web:
        with tracer.start_as_current_span("POST /orders"):
            async with web.transaction() as tx:
                await tx.send(PlaceOrder(order_id="o-1"))
        await asyncio.wait_for(placed.wait(), 20)
        await spans.wait_for("send shop.PlaceOrder", "process shop.PlaceOrder")

    http = spans.one("POST /orders")
    send = spans.one("send shop.PlaceOrder")
    assert is_child(send, http)
    assert is_child(spans.one("process shop.PlaceOrder"), send)
