"""The fulfilment saga under test, and a 'world' service that records the commands it gets."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from busline import Bus, Context, Saga, SagaContext
from tests.sagas.messages import (
    Fulfilment,
    OrderPlaced,
    PaymentOverdue,
    PaymentReceived,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    RetrievePayment,
    ShipOrder,
    StockReserved,
    StockShort,
    Touch,
)

DEADLINE = 900.0


def fulfilment_saga(**options: Any) -> Saga:
    """Payment and stock, in either order, within the deadline; else undo what was done."""
    saga = Saga("sagas.fulfilment", state=Fulfilment, key="order_id", **options)

    @saga.starts(OrderPlaced, sends=[ReserveStock, RetrievePayment], timeouts=[PaymentOverdue])
    async def placed(evt: OrderPlaced, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.send(
            ReserveStock(order_id=evt.order_id), compensate=ReleaseStock(order_id=evt.order_id)
        )
        await ctx.send(
            RetrievePayment(order_id=evt.order_id, amount=evt.amount),
            compensate=RefundPayment(order_id=evt.order_id),
        )
        await ctx.request_timeout(DEADLINE, PaymentOverdue(order_id=evt.order_id))

    @saga.handles(PaymentReceived, sends=[ShipOrder])
    async def paid(evt: PaymentReceived, state: Fulfilment, ctx: SagaContext) -> None:
        state.paid = True
        await ship_when_ready(state, ctx)

    @saga.handles(StockReserved, sends=[ShipOrder])
    async def reserved(evt: StockReserved, state: Fulfilment, ctx: SagaContext) -> None:
        state.reserved = True
        await ship_when_ready(state, ctx)

    @saga.handles(StockShort, sends=[RefundPayment, ReleaseStock])
    async def short(evt: StockShort, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.compensate("stock short")

    @saga.handles(PaymentOverdue, sends=[RefundPayment, ReleaseStock])
    async def overdue(msg: PaymentOverdue, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.compensate("payment overdue")

    @saga.handles(Touch)
    async def touch(msg: Touch, state: Fulfilment, ctx: SagaContext) -> None:
        state.touches += 1

    return saga


async def ship_when_ready(state: Fulfilment, ctx: SagaContext) -> None:
    """Both facts in: ship once and end the process."""
    if state.paid and state.reserved:
        await ctx.send(ShipOrder(order_id=state.order_id))
        state.shipped = True
        ctx.complete()


class World:
    """The services the saga commands, as one bus that counts what it is told to do."""

    COMMANDS = (ReserveStock, ReleaseStock, RetrievePayment, RefundPayment, ShipOrder)

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.got: Counter[tuple[str, str]] = Counter()
        self.order: list[str] = []
        self.changed = asyncio.Event()
        for command in self.COMMANDS:
            bus.command_handler(command)(self._record)

    async def _record(self, cmd: Any, ctx: Context) -> None:
        self.got[(type(cmd).__name__, cmd.order_id)] += 1
        self.order.append(type(cmd).__name__)
        self.changed.set()

    async def wait_for(self, *wanted: tuple[str, str], timeout: float = 20.0) -> None:
        """Until each ``(command, order id)`` arrived at least once."""
        async with asyncio.timeout(timeout):
            while not all(self.got[w] for w in wanted):
                self.changed.clear()
                await self.changed.wait()
