"""Saga steps in traces: each step is a span in the trace of the message that drove it, with
the saga, the instance key and the outcome; a timeout fires in a new trace linked back."""

from __future__ import annotations

from busline import StoreSettings
from busline.testing import VirtualClock
from tests.sagas.messages import OrderPlaced, PaymentReceived
from tests.sagas.shop import DEADLINE, World, fulfilment_saga
from tests.tracing.support import attrs, is_child

FAST = StoreSettings(relay_interval=0.02, relay_max_backoff=0.1)


async def test_each_step_is_a_span_with_its_outcome_and_a_timeout_starts_a_new_trace(
    make_bus, traced, spans, tmp_path
):
    clock = VirtualClock()
    orders = make_bus(
        "orders", store=f"sqlite:///{tmp_path}/o.db", store_settings=FAST, clock=clock, **traced
    )
    orders.add_saga(fulfilment_saga())
    world = World(
        make_bus("world", store=f"sqlite:///{tmp_path}/w.db", store_settings=FAST, clock=clock)
    )
    async with orders, world.bus:
        await orders.publish(OrderPlaced(order_id="o-1"))
        await world.wait_for(("ReserveStock", "o-1"))
        await orders.publish(PaymentReceived(order_id="o-1"))
        await spans.wait_for("saga sagas.fulfilment", count=2)
        clock.advance(DEADLINE + 1)
        await world.wait_for(("RefundPayment", "o-1"))
        await spans.wait_for("saga sagas.fulfilment", count=3)
        await spans.wait_for("process sagas.PaymentOverdue")

    steps = sorted(spans.named("saga sagas.fulfilment"), key=lambda s: s.start_time or 0)
    assert [attrs(s)["busline.saga.outcome"] for s in steps] == [
        "started",
        "updated",
        "compensated: payment overdue",
    ]
    assert {attrs(s)["busline.saga.key"] for s in steps} == {"o-1"}
    placed = spans.one("process sagas.OrderPlaced:orders.sagas.fulfilment.placed")
    assert is_child(steps[0], placed)
    fired = spans.one("process sagas.PaymentOverdue")
    assert is_child(steps[2], fired)
    # The timeout's processing starts its own trace, linked to the send it came from.
    assert fired.context.trace_id != placed.context.trace_id
    assert fired.links and fired.parent is None
