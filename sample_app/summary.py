"""What a run did, read back from each service's own database, and the table that shows it.

Every figure about orders and effects is counted in the database that holds it, by business
key (an order id appears once per table, whatever was redelivered): the summary reports what
the services recorded, not what the driver hoped for.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from sample_app.config import ShopConfig
from sample_app.storage import is_postgres, plain_dsn, schema_of, store_url

#: service -> {figure: query}. Each query returns one number.
QUERIES: dict[str, dict[str, str]] = {
    "payment": {
        "charged": "SELECT COUNT(*) FROM charges WHERE status IN ('charged', 'refunded')",
        "charged_twice": "SELECT COUNT(*) - COUNT(DISTINCT order_id) FROM charges",
        "refunds": "SELECT COUNT(*) FROM refunds",
        "money_refunded": "SELECT COUNT(*) FROM refunds WHERE amount > 0",
    },
    "inventory": {
        "releases": "SELECT COUNT(*) FROM releases",
        "stock_released": "SELECT COUNT(*) FROM releases WHERE quantity > 0",
        "still_reserved": "SELECT COUNT(*) FROM reservations WHERE status = 'reserved'",
    },
    "shipping": {"shipped": "SELECT COUNT(*) FROM shipments"},
    "notification": {"mails": "SELECT COUNT(*) FROM notifications"},
    "loyalty": {"points_awarded": "SELECT COUNT(*) FROM points"},
}
ORDERS = "SELECT status, reason FROM orders"


@dataclass
class Effects:
    """What the databases hold."""

    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def placed(self) -> int:
        """Orders in checkout's table."""
        return sum(self.statuses.values())

    @property
    def final(self) -> int:
        """Orders that reached a final state."""
        return self.statuses["fulfilled"] + self.statuses["cancelled"]


async def read_effects(config: ShopConfig) -> Effects:
    """Count, in each service's store, what it recorded."""
    effects = Effects()
    for status, reason in await _rows(config, "checkout", ORDERS):
        effects.statuses[status] += 1
        if status == "cancelled":
            effects.reasons[reason] += 1
    for service, queries in QUERIES.items():
        for name, sql in queries.items():
            [(value,)] = await _rows(config, service, sql)
            effects.figures[name] = int(value)
    return effects


async def _rows(config: ShopConfig, service: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` in ``service``'s store, through a connection of our own (the service
    may run in another process)."""
    if is_postgres(config.store):
        import asyncpg  # type: ignore[import-untyped]

        schema = schema_of(config.run_id, service)
        conn = await asyncpg.connect(
            plain_dsn(config.store), server_settings={"search_path": schema}
        )
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()
    path = store_url(config.store, service, config.run_id).removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        rows = [tuple(r) for r in db.execute(sql).fetchall()]
    db.close()
    return rows


@dataclass
class RunFigures:
    """What the driver and this process's buses saw."""

    ordered: int
    seconds: float
    client_retries: int = 0
    client_retries_absorbed: int = 0


def summary_table(effects: Effects, figures: RunFigures, config: ShopConfig) -> Table:
    """The run's summary: where every order went, and what it took."""
    table = Table(title="sample shop: summary", title_justify="left", show_header=True)
    table.add_column("", style="bold")
    table.add_column("count", justify="right")
    table.add_column("from", style="dim")
    tally, f = config.tally, effects.figures
    table.add_row("orders placed", str(effects.placed), "checkout's orders table")
    table.add_row("fulfilled", str(effects.statuses["fulfilled"]), "checkout (OrderFulfilled)")
    for reason, count in sorted(effects.reasons.items()):
        table.add_row(f"cancelled: {reason}", str(count), "checkout (OrderCancelled)")
    open_orders = effects.placed - effects.final
    if open_orders or effects.placed != figures.ordered:
        table.add_row("not finished", str(figures.ordered - effects.final), "", style="red")
    table.add_row(
        "compensations run",
        str(f["refunds"] + f["releases"]),
        f"{f['refunds']} refunds ({f['money_refunded']} gave money back), "
        f"{f['releases']} releases ({f['stock_released']} put stock back)",
    )
    table.add_row("charged / shipped", f"{f['charged']} / {f['shipped']}", "payment, shipping")
    table.add_row("charged twice", str(f["charged_twice"]), "payment's charges by order")
    table.add_row("retries", str(tally.retries), "handler attempts that failed and ran again")
    table.add_row(
        "duplicates absorbed",
        str(tally.duplicates_absorbed + figures.client_retries_absorbed),
        f"{tally.duplicates_absorbed} by inboxes ({tally.duplicates_sent} sent twice), "
        f"{figures.client_retries_absorbed} client retries by checkout's key",
    )
    table.add_row("messages parked", str(tally.parked), "error queue")
    table.add_row("time taken", f"{figures.seconds:.2f} s", "first POST to last final state")
    rate = effects.final / figures.seconds if figures.seconds else 0.0
    table.add_row("orders/s", f"{rate:.1f}", "")
    return table
