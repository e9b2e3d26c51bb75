"""Run the sample shop: ``python -m sample_app [--orders N] [--url URL]``.

All services run in this one process on the embedded in-process transport by default; pass an
``amqp://`` URL to run them over RabbitMQ instead (each could then run in its own process).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from busline import Bus, Context
from sample_app.messages import OrderShipped, PlaceOrder
from sample_app.services import orders_service, payments_service, warehouse_service


async def run_shop(url: str, orders: int, quiet: bool = False) -> dict[str, str]:
    """Place ``orders`` orders and wait until each is shipped; return order id -> correlation."""

    def report(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    checkout = Bus(service="checkout", url=url)
    shipped: dict[str, str] = {}
    all_shipped = asyncio.Event()

    @checkout.event_subscriber
    async def order_shipped(evt: OrderShipped, ctx: Context) -> None:
        shipped[evt.order_id] = ctx.correlation_id
        if len(shipped) == orders:
            all_shipped.set()

    services = [
        orders_service(url, report),
        payments_service(url, report),
        warehouse_service(url, report),
        checkout,
    ]
    for bus in services:
        await bus.start()
    try:
        for n in range(1, orders + 1):
            order_id = f"order-{n}"
            await checkout.send(
                PlaceOrder(order_id=order_id, customer=f"customer-{n % 3}", amount=10.0 * n),
                correlation_id=order_id,
            )
        await asyncio.wait_for(all_shipped.wait(), timeout=60)
    finally:
        for bus in reversed(services):
            await bus.stop()
    return shipped


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m sample_app", description=__doc__)
    parser.add_argument("--orders", type=int, default=5, help="how many orders to place")
    parser.add_argument("--url", default="memory://", help="bus URL (default: memory://)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    shipped = asyncio.run(run_shop(args.url, args.orders, args.quiet))
    elapsed = time.perf_counter() - started
    correlated = all(order == correlation for order, correlation in shipped.items())
    print(
        f"\n{len(shipped)}/{args.orders} orders shipped in {elapsed:.2f}s; every event carried "
        f"its order's correlation id: {correlated}"
    )
    return 0 if len(shipped) == args.orders and correlated else 1


if __name__ == "__main__":
    sys.exit(main())
