"""fulfilment: the saga that owns an order's outcome, and its deadline.

Without it, "checkout → payment → inventory → shipping" would be a chain of event subscriptions
that nobody owns: no one could see where an order is, reorder the steps, or notice that one
never answered. Here the process has a home. It starts on checkout's ``OrderPlaced`` fact, then
**commands** payment and inventory (it cares that they happen, so it depends on them), waits for
both answers within a deadline, commands shipping, and ends the order with a fact of its own:
``OrderFulfilled`` or ``OrderCancelled`` with the reason. On a decline, a shortage or the
deadline it compensates what it asked for: the refund and the stock release were recorded with
the commands they undo, and are sent newest first.
"""

from __future__ import annotations

import msgspec

from busline import Bus, Saga, SagaContext
from sample_app.config import ShopConfig
from sample_app.messages import (
    FulfilmentOverdue,
    FulfilmentProgressed,
    OrderCancelled,
    OrderFulfilled,
    OrderPlaced,
    OrderShipped,
    PaymentDeclined,
    PaymentRetrieved,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    RetrievePayment,
    ShipOrder,
    StockReserved,
    StockShort,
)

SAGA = "shop.fulfilment"
ENDS = (OrderFulfilled, OrderCancelled, FulfilmentProgressed)


class Fulfilment(msgspec.Struct):
    """The state of one order's fulfilment, persisted between steps."""

    order_id: str
    customer: str = ""
    amount: float = 0.0
    paid: bool = False
    reserved: bool = False
    shipping: bool = False


def fulfilment_saga(config: ShopConfig) -> Saga:
    """The saga, with the run's deadline and faults."""
    saga = Saga(SAGA, state=Fulfilment, key="order_id")
    faults, say = config.faults, config.say

    # Commands, each with its undo recorded beside it: payment and inventory are general
    # services offering requests; the saga decides the order and carries the coupling.
    @saga.starts(
        OrderPlaced,
        sends=[ReserveStock, RetrievePayment],
        publishes=[FulfilmentProgressed],
        timeouts=[FulfilmentOverdue],
    )
    async def placed(evt: OrderPlaced, state: Fulfilment, ctx: SagaContext) -> None:
        state.customer, state.amount = evt.customer, evt.amount
        order = evt.order_id
        # Idempotency keys by business key: however often this step's messages are sent, the
        # order is reserved once and charged once.
        await ctx.send(
            ReserveStock(order_id=order, sku=evt.sku, quantity=evt.quantity),
            compensate=ReleaseStock(order_id=order),
            idempotency_key=f"reserve-{order}",
        )
        await ctx.send(
            RetrievePayment(
                order_id=order, customer=evt.customer, amount=evt.amount, card=evt.card
            ),
            compensate=RefundPayment(order_id=order),
            idempotency_key=f"charge-{order}",
        )
        await ctx.request_timeout(config.deadline, FulfilmentOverdue(order_id=order))
        await ctx.publish(FulfilmentProgressed(order_id=order, step="awaiting payment and stock"))
        await faults.work("fulfilment", ctx)

    @saga.handles(PaymentRetrieved, sends=[ShipOrder], publishes=list(ENDS))
    async def paid(evt: PaymentRetrieved, state: Fulfilment, ctx: SagaContext) -> None:
        state.paid = True
        await ctx.publish(FulfilmentProgressed(order_id=state.order_id, step="paid"))
        await _ship_when_ready(state, ctx)
        await faults.work("fulfilment", ctx)

    @saga.handles(StockReserved, sends=[ShipOrder], publishes=list(ENDS))
    async def reserved(evt: StockReserved, state: Fulfilment, ctx: SagaContext) -> None:
        state.reserved = True
        await ctx.publish(FulfilmentProgressed(order_id=state.order_id, step="stock reserved"))
        await _ship_when_ready(state, ctx)
        await faults.work("fulfilment", ctx)

    @saga.handles(PaymentDeclined, sends=[RefundPayment, ReleaseStock], publishes=list(ENDS))
    async def declined(evt: PaymentDeclined, state: Fulfilment, ctx: SagaContext) -> None:
        await _cancel(state, ctx, "payment declined")

    @saga.handles(StockShort, sends=[RefundPayment, ReleaseStock], publishes=list(ENDS))
    async def short(evt: StockShort, state: Fulfilment, ctx: SagaContext) -> None:
        await _cancel(state, ctx, "out of stock")

    @saga.handles(FulfilmentOverdue, sends=[RefundPayment, ReleaseStock], publishes=list(ENDS))
    async def overdue(msg: FulfilmentOverdue, state: Fulfilment, ctx: SagaContext) -> None:
        # The deadline covers payment and stock; once both are in, shipping is under way and
        # the parcel is not called back.
        if not state.shipping:
            await _cancel(state, ctx, "deadline passed")

    @saga.handles(OrderShipped, publishes=list(ENDS))
    async def shipped(evt: OrderShipped, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.publish(
            OrderFulfilled(order_id=state.order_id, customer=state.customer, amount=state.amount)
        )
        say(f"fulfilment    {state.order_id} fulfilled")
        ctx.complete()

    return saga


async def _ship_when_ready(state: Fulfilment, ctx: SagaContext) -> None:
    """Both answers in: command shipping once. A command, since the saga cares that the
    parcel leaves, and shipping need not know about orders' payments or stock."""
    if state.paid and state.reserved and not state.shipping:
        state.shipping = True
        await ctx.send(
            ShipOrder(order_id=state.order_id, customer=state.customer),
            idempotency_key=f"ship-{state.order_id}",
        )
        await ctx.publish(FulfilmentProgressed(order_id=state.order_id, step="shipping"))


async def _cancel(state: Fulfilment, ctx: SagaContext, reason: str) -> None:
    """Undo what was asked (newest first), end the instance, and say so as a fact: whoever
    cares (checkout, notification) subscribes; the saga does not know them."""
    await ctx.compensate(reason)
    await ctx.publish(
        OrderCancelled(order_id=state.order_id, customer=state.customer, reason=reason)
    )


def make(config: ShopConfig) -> _Service:
    """The fulfilment service: a bus whose only job is the saga."""
    bus = config.bus("fulfilment")
    bus.add_saga(fulfilment_saga(config))
    return _Service(bus)


class _Service:
    """A service object with just a bus (busline creates the saga's tables itself)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus


def bus() -> Bus:
    """The fulfilment service's bus, configured from the environment (see
    :meth:`ShopConfig.from_env`), for ``busline map|lint|run sample_app.fulfilment:bus``."""
    return make(ShopConfig.from_env()).bus  # type: ignore[attr-defined,no-any-return]
