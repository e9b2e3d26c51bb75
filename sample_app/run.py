"""The two ways to run the shop: all of it here with a load of orders, or one service alone."""

from __future__ import annotations

import asyncio

from rich.console import Console

from busline.urls import mask_url
from sample_app.config import ShopConfig
from sample_app.driver import run_shop
from sample_app.shop import Shop
from sample_app.storage import SERVICES, is_postgres
from sample_app.summary import summary_table
from sample_app.web import WebServer


async def run_all(
    config: ShopConfig,
    orders: int,
    console: Console,
    port: int = 0,
    serve: bool = False,
    here: tuple[str, ...] = SERVICES,
) -> int:
    """Every service in this process; place the orders, print the summary. Exit status 0
    when every order reached a final state and nothing was charged twice."""
    where = "in-process" if config.broker.startswith("memory") else mask_url(config.broker)
    store = "PostgreSQL" if is_postgres(config.store) else "SQLite"
    console.print(
        f"[bold]busline sample shop[/]: {len(here)} of 7 services here, broker {where}, "
        f"a {store} store each; placing {orders} orders over HTTP"
    )
    try:
        result = await run_shop(config, orders, console, port, serve, here)
    finally:
        # The run's schemas go with it; services running elsewhere still use theirs.
        if is_postgres(config.store) and here == SERVICES:
            await Shop(config, ()).drop_all()
    console.print(summary_table(result.effects, result.figures, config))
    ok = result.effects.final == orders and result.effects.figures["charged_twice"] == 0
    return 0 if ok else 1


async def run_one(config: ShopConfig, name: str, port: int = 0) -> int:
    """One service alone (its own process), until Ctrl-C; checkout also serves HTTP."""
    shop = Shop(config, (name,))
    await shop.start()
    web = None
    if name == "checkout":
        web = WebServer(shop.checkout, port=port or 8000)
        await web.start()
        print(f"checkout serving {web.url}/", flush=True)
    print(f"{name} running on {mask_url(config.broker)} (run id {config.run_id})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        if web is not None:
            await web.stop()
        await shop.stop()
    return 0
