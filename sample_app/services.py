"""The services of the sample shop, each its own Bus with its own database (and, in production,
its own process).

Every service keeps its data in its own SQLite file, in the same transaction as busline's outbox
and inbox: a handler's write and the messages it sends commit together (``ctx.db``), and a
message handled once is never applied twice, whatever the broker redelivers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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

#: Each service's own tables, created at start next to busline's.
TABLES = {
    "checkout": "CREATE TABLE IF NOT EXISTS checkouts (order_id TEXT PRIMARY KEY, amount REAL)",
    "orders": (
        "CREATE TABLE IF NOT EXISTS orders "
        "(order_id TEXT PRIMARY KEY, customer TEXT NOT NULL, amount REAL NOT NULL)"
    ),
    "payments": "CREATE TABLE IF NOT EXISTS payments (order_id TEXT PRIMARY KEY, amount REAL)",
    "warehouse": "CREATE TABLE IF NOT EXISTS shipments (order_id TEXT PRIMARY KEY)",
}


def store_of(data_dir: Path, service: str) -> str:
    """The embedded default: a SQLite file per service."""
    return f"sqlite:///{data_dir / service}.db"


async def create_tables(bus: Bus) -> None:
    """Create the service's own tables (in a busline transaction, like any other write)."""
    async with bus.transaction() as tx:
        await tx.db.execute(TABLES[bus.service])


def orders_service(url: str, data_dir: Path, report: Report) -> Bus:
    """Accepts orders: records each once and announces it."""
    bus = Bus(service="orders", url=url, store=store_of(data_dir, "orders"))

    @bus.command_handler
    async def place_order(cmd: PlaceOrder, ctx: Context) -> None:
        # The order row, the inbox record of this command and OrderPlaced (in the outbox)
        # commit together; a redelivered or re-sent PlaceOrder never gets here twice.
        await ctx.db.execute(
            "INSERT INTO orders (order_id, customer, amount) VALUES (?, ?, ?)",
            (cmd.order_id, cmd.customer, cmd.amount),
        )
        report(f"orders    accepted {cmd.order_id} for {cmd.customer} ({cmd.amount:.2f})")
        await ctx.publish(
            OrderPlaced(order_id=cmd.order_id, customer=cmd.customer, amount=cmd.amount)
        )

    return bus


def payments_service(url: str, data_dir: Path, report: Report, flaky_every: int = 3) -> Bus:
    """Charges cards when an order is placed. Every ``flaky_every``-th charge fails once after
    writing its payment row, to show that a failed attempt leaves nothing behind and the retry
    charges exactly once."""
    bus = Bus(
        service="payments",
        url=url,
        store=store_of(data_dir, "payments"),
        retry=RetryPolicy(immediate=2, delays=(1.0, 5.0)),
    )
    charges = 0
    failed_once: set[str] = set()

    @bus.event_subscriber
    async def charge_for_order(evt: OrderPlaced, ctx: Context) -> None:
        await ctx.send(ChargeCard(order_id=evt.order_id, amount=evt.amount))

    @bus.command_handler
    async def charge_card(cmd: ChargeCard, ctx: Context) -> None:
        nonlocal charges
        charges += 1
        await ctx.db.execute(
            "INSERT INTO payments (order_id, amount) VALUES (?, ?)", (cmd.order_id, cmd.amount)
        )
        if charges % flaky_every == 0 and cmd.order_id not in failed_once:
            failed_once.add(cmd.order_id)
            report(f"payments  card gateway timed out for {cmd.order_id} (attempt {ctx.attempt})")
            raise TimeoutError("card gateway timed out")  # rolls the payment row back
        report(f"payments  captured {cmd.amount:.2f} for {cmd.order_id} (attempt {ctx.attempt})")
        await ctx.publish(PaymentCaptured(order_id=cmd.order_id, amount=cmd.amount))

    return bus


def warehouse_service(url: str, data_dir: Path, report: Report) -> Bus:
    """Ships paid orders."""
    bus = Bus(service="warehouse", url=url, store=store_of(data_dir, "warehouse"))

    @bus.event_subscriber
    async def ship_when_paid(evt: PaymentCaptured, ctx: Context) -> None:
        await ctx.send(ShipOrder(order_id=evt.order_id))

    @bus.command_handler
    async def ship_order(cmd: ShipOrder, ctx: Context) -> None:
        await ctx.db.execute("INSERT INTO shipments (order_id) VALUES (?)", (cmd.order_id,))
        report(f"warehouse shipped {cmd.order_id}")
        await ctx.publish(OrderShipped(order_id=cmd.order_id))

    return bus


def checkout_service(url: str, data_dir: Path) -> Bus:
    """The web front: places orders (see :func:`sample_app.__main__.checkout`) and hears when
    they ship."""
    return Bus(service="checkout", url=url, store=store_of(data_dir, "checkout"))
