"""One run of the shop: start the services, place orders over HTTP like real clients, follow
them to their final states with a progress bar, and read back what every service recorded."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from busline.testing import join
from sample_app.config import ShopConfig
from sample_app.shop import Shop
from sample_app.storage import SERVICES
from sample_app.summary import Effects, RunFigures, read_effects
from sample_app.web import WebServer

#: Orders in flight from the client at once.
CONCURRENCY = 16
#: Every so many orders, the client "times out" and posts the same order again (same key).
CLIENT_RETRY_EVERY = 25
SKUS = ("blue-mug", "red-kettle", "green-teapot")


@dataclass
class RunResult:
    """What a run produced."""

    effects: Effects
    figures: RunFigures
    url: str


async def place_orders(
    client: httpx.AsyncClient, config: ShopConfig, n: int, figures: RunFigures, on_placed: object
) -> None:
    """POST ``n`` orders, ``CONCURRENCY`` at a time; some twice, as a retrying client would."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        body = {
            "customer": f"customer-{i % 7}",
            "sku": SKUS[i % len(SKUS)],
            "quantity": 1 + i % 3,
            "amount": round(5 + (i * 7.3) % 60, 2),
        }
        headers = {"Idempotency-Key": f"{config.run_id}-{i}"}
        async with gate:
            first = await client.post("/orders", json=body, headers=headers)
            first.raise_for_status()
            if i % CLIENT_RETRY_EVERY == 0:
                again = await client.post("/orders", json=body, headers=headers)
                figures.client_retries += 1
                same = again.json()["order_id"] == first.json()["order_id"]
                figures.client_retries_absorbed += again.status_code == 200 and same
        on_placed()  # type: ignore[operator]

    await asyncio.gather(*(one(i) for i in range(n)))


async def settle(shop: Shop, expected: int, limit: float) -> Effects:
    """Wait until every order is final and every effect it caused is recorded (the last
    mails, points and compensations follow the final state), then count."""
    config = shop.config
    if urlsplit(config.broker).scheme == "memory":
        with contextlib.suppress(TimeoutError):  # then the summary shows what is missing
            await join(config.broker, timeout=limit)  # event-driven: the broker is quiet
        return await read_effects(config)
    # RabbitMQ has no "quiet": poll the databases until what must follow has followed.
    give_up = time.monotonic() + limit
    while True:
        effects = await read_effects(config)
        if _complete(effects, expected) or time.monotonic() > give_up:
            return effects
        await asyncio.sleep(0.2)


def _complete(effects: Effects, expected: int) -> bool:
    f, cancelled = effects.figures, effects.statuses["cancelled"]
    mails = effects.placed + effects.final
    return (
        effects.final == expected
        and f["refunds"] == f["releases"] == cancelled
        and f["points_awarded"] == effects.statuses["fulfilled"]
        and f["mails"] == mails
    )


async def run_shop(
    config: ShopConfig,
    orders: int,
    console: Console | None = None,
    port: int = 0,
    serve: bool = False,
    here: tuple[str, ...] = SERVICES,
) -> RunResult:
    """Run the services named ``here`` (the others run elsewhere), place ``orders`` orders and
    follow them to the end."""
    console = console or Console(stderr=True)
    shop = Shop(config, here)
    await shop.start()
    web = WebServer(shop.checkout, port=port)
    await web.start()
    figures = RunFigures(ordered=orders, seconds=0.0)
    try:
        started = time.perf_counter()
        limit = 30.0 + config.deadline + 10 * max(config.faults.slow.values(), default=0)
        await _drive(shop, web.url, orders, figures, console, limit)
        figures.seconds = time.perf_counter() - started
        effects = await settle(shop, orders, limit)
        if serve:
            console.print(f"[bold]serving the shop at {web.url}/[/] (Ctrl-C stops it)")
            await asyncio.Event().wait()
    finally:
        await web.stop()
        await shop.stop()
    return RunResult(effects, figures, web.url)


async def _drive(
    shop: Shop, url: str, orders: int, figures: RunFigures, console: Console, stall: float
) -> None:
    """Post the orders and follow them; give up when none finishes for ``stall`` seconds."""
    columns = (
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    checkout = shop.checkout
    with Progress(*columns, console=console, transient=False) as progress:
        placed = progress.add_task("placed", total=orders)
        done = progress.add_task("final", total=orders)
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            posting = asyncio.create_task(
                place_orders(client, shop.config, orders, figures, lambda: progress.advance(placed))
            )
            stalled_at = time.monotonic() + stall
            while time.monotonic() < stalled_at:
                checkout.changed.clear()
                progress.update(done, completed=min(checkout.finished, orders))
                if posting.done() and posting.exception() is not None:
                    await posting  # raises the client's error
                # The in-memory count only says when to look; the database has the last word.
                if checkout.finished >= orders and await checkout.count_final() >= orders:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(checkout.changed.wait(), 1.0)
                    stalled_at = time.monotonic() + stall
            else:
                console.print(f"[red]no order finished for {stall:.0f} s: giving up waiting[/]")
            await posting
