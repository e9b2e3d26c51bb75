"""Run the sample shop: ``python -m sample_app [--orders N] [--url URL] [--data-dir DIR]``.

All services run in this one process on the embedded in-process transport by default; pass an
``amqp://`` URL to run them over RabbitMQ instead (each could then run in its own process). Each
service keeps its data, outbox and inbox in a SQLite file of its own, in a fresh temporary
directory unless ``--data-dir`` names one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from busline import Bus, Context
from sample_app.messages import OrderShipped, PlaceOrder
from sample_app.services import (
    checkout_service,
    create_tables,
    orders_service,
    payments_service,
    store_of,
    warehouse_service,
)


@dataclass
class ShopRun:
    """What a run of the shop did, read back from the services' own databases."""

    #: Order id -> the correlation id its OrderShipped event carried.
    shipped: dict[str, str] = field(default_factory=dict)
    #: PlaceOrder commands sent (a client retry sends one twice, with the same key).
    place_orders_sent: int = 0
    #: Rows in each service's own table.
    rows: dict[str, int] = field(default_factory=dict)
    #: Outbox rows not yet sent, over all services (0 once everything left).
    outbox_pending: int = 0


async def checkout(bus: Bus, order_id: str, customer: str, amount: float) -> None:
    """What the web front's checkout endpoint does: record the checkout and ask for the order,
    atomically. A client that retries (a double click, a timeout) repeats the same
    idempotency key, so the order is placed once however often this runs."""
    async with bus.transaction() as tx:
        await tx.db.execute(
            "INSERT INTO checkouts (order_id, amount) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (order_id, amount),
        )
        await tx.send(
            PlaceOrder(order_id=order_id, customer=customer, amount=amount),
            correlation_id=order_id,
            idempotency_key=f"checkout-{order_id}",
        )


async def run_shop(url: str, orders: int, data_dir: Path, quiet: bool = False) -> ShopRun:
    """Place ``orders`` orders (the first one twice, as a retrying client would) and wait until
    each is shipped."""

    def report(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    run = ShopRun()
    all_shipped = asyncio.Event()
    front = checkout_service(url, data_dir)

    @front.event_subscriber
    async def order_shipped(evt: OrderShipped, ctx: Context) -> None:
        run.shipped[evt.order_id] = ctx.correlation_id
        if len(run.shipped) == orders:
            all_shipped.set()

    services = [
        orders_service(url, data_dir, report),
        payments_service(url, data_dir, report),
        warehouse_service(url, data_dir, report),
        front,
    ]
    try:
        for bus in services:
            await bus.start()
            await create_tables(bus)
        for n in range(1, orders + 1):
            order_id = f"order-{n}"
            attempts = 2 if n == 1 else 1
            for attempt in range(1, attempts + 1):
                await checkout(front, order_id, f"customer-{n % 3}", 10.0 * n)
                run.place_orders_sent += 1
                if attempt > 1:
                    report(f"checkout  {order_id} submitted again (a client retry, same key)")
        if orders:
            await asyncio.wait_for(all_shipped.wait(), 60)
    finally:
        for bus in reversed(services):
            await bus.stop()
    run.rows, run.outbox_pending = _read_back(data_dir)
    return run


def _read_back(data_dir: Path) -> tuple[dict[str, int], int]:
    tables = {"checkout": "checkouts", "orders": "orders", "payments": "payments"}
    tables["warehouse"] = "shipments"
    rows: dict[str, int] = {}
    pending = 0
    for service, table in tables.items():
        path = store_of(data_dir, service).removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            rows[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            pending += db.execute(
                "SELECT COALESCE(SUM(messages - sent), 0) FROM busline_outbox_transactions "
                "WHERE dispatched_at IS NULL"
            ).fetchone()[0]
        db.close()
    return rows, pending


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m sample_app", description=__doc__)
    parser.add_argument("--orders", type=int, default=5, help="how many orders to place")
    parser.add_argument("--url", default="memory://", help="bus URL (default: memory://)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the services' SQLite files go (default: a fresh temporary directory)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.data_dir is not None and args.data_dir.exists() and any(args.data_dir.iterdir()):
        # The inboxes there remember earlier runs' orders and would skip them as duplicates.
        parser.error(f"--data-dir {args.data_dir} is not empty: name a new or empty directory")
    with tempfile.TemporaryDirectory(prefix="busline-shop-") as scratch:
        data_dir = args.data_dir or Path(scratch)
        data_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        run = asyncio.run(run_shop(args.url, args.orders, data_dir, args.quiet))
        elapsed = time.perf_counter() - started
    correlated = all(order == correlation for order, correlation in run.shipped.items())
    once = all(count == args.orders for count in run.rows.values())
    print(
        f"\n{len(run.shipped)}/{args.orders} orders shipped in {elapsed:.2f}s; every event "
        f"carried its order's correlation id: {correlated}\n"
        f"{run.place_orders_sent} PlaceOrder commands sent; rows written: "
        + ", ".join(f"{table} {count}" for table, count in run.rows.items())
        + f" (each order exactly once: {once}); outbox rows left unsent: {run.outbox_pending}"
    )
    ok = len(run.shipped) == args.orders and correlated and once and run.outbox_pending == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
