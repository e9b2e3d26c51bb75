"""The services of the sample shop, each its own Bus (and, in production, its own process)."""

from __future__ import annotations

from collections.abc import Callable

from busline import Bus, Context, RetryPolicy
from sample_app.messages import (
    ChargeCard,
    OrderPlaced,
    OrderShipped,
    PaymentCaptured,
    PlaceOrder,
    ShipOrder,
)

Report = Callable[[str], None]


def orders_service(url: str, report: Report) -> Bus:
    """Accepts orders and announces them."""
    bus = Bus(service="orders", url=url)

    @bus.command_handler
    async def place_order(cmd: PlaceOrder, ctx: Context) -> None:
        report(f"orders    accepted {cmd.order_id} for {cmd.customer} ({cmd.amount:.2f})")
        await ctx.publish(
            OrderPlaced(order_id=cmd.order_id, customer=cmd.customer, amount=cmd.amount)
        )

    return bus


def payments_service(url: str, report: Report, flaky_every: int = 3) -> Bus:
    """Charges cards when an order is placed. Every ``flaky_every``-th charge fails once, to
    show immediate retries at work."""
    bus = Bus(service="payments", url=url, retry=RetryPolicy(immediate=2, delays=(1.0, 5.0)))
    charges = 0
    failed_once: set[str] = set()

    @bus.event_subscriber
    async def charge_for_order(evt: OrderPlaced, ctx: Context) -> None:
        await ctx.send(ChargeCard(order_id=evt.order_id, amount=evt.amount))

    @bus.command_handler
    async def charge_card(cmd: ChargeCard, ctx: Context) -> None:
        nonlocal charges
        charges += 1
        if charges % flaky_every == 0 and cmd.order_id not in failed_once:
            failed_once.add(cmd.order_id)
            report(f"payments  card gateway timed out for {cmd.order_id} (attempt {ctx.attempt})")
            raise TimeoutError("card gateway timed out")
        report(f"payments  captured {cmd.amount:.2f} for {cmd.order_id} (attempt {ctx.attempt})")
        await ctx.publish(PaymentCaptured(order_id=cmd.order_id, amount=cmd.amount))

    return bus


def warehouse_service(url: str, report: Report) -> Bus:
    """Ships paid orders."""
    bus = Bus(service="warehouse", url=url)

    @bus.event_subscriber
    async def ship_when_paid(evt: PaymentCaptured, ctx: Context) -> None:
        await ctx.send(ShipOrder(order_id=evt.order_id))

    @bus.command_handler
    async def ship_order(cmd: ShipOrder, ctx: Context) -> None:
        report(f"warehouse shipped {cmd.order_id}")
        await ctx.publish(OrderShipped(order_id=cmd.order_id))

    return bus
