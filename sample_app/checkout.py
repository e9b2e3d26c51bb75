"""checkout: takes orders over HTTP and records what became of them.

It writes the order and publishes ``OrderPlaced`` in one ``bus.transaction()``: the row and the
event commit together, so an order is never placed without the event, nor announced without the
row. The client's idempotency key is a unique column: a retried POST finds the order it already
placed and places nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from busline import Bus, Context
from sample_app.config import ShopConfig
from sample_app.messages import (
    FulfilmentProgressed,
    OrderCancelled,
    OrderFulfilled,
    OrderPlaced,
)
from sample_app.storage import create_tables, execute, fetch

TABLES = (
    """CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE, customer TEXT NOT NULL,
        sku TEXT NOT NULL, quantity INTEGER NOT NULL, amount DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', placed_at DOUBLE PRECISION NOT NULL)
    """,
    # A row per step, not a list in the order's row: events of one order are handled
    # concurrently (PostgreSQL), and two read-modify-writes of one list would lose a step.
    """CREATE TABLE IF NOT EXISTS order_history (order_id TEXT NOT NULL, step TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL, PRIMARY KEY (order_id, step))""",
)
COLUMNS = "order_id, customer, sku, quantity, amount, status, reason, placed_at"
FINAL = ("fulfilled", "cancelled")


@dataclass
class NewOrder:
    """What a client posts."""

    customer: str
    sku: str
    quantity: int
    amount: float
    card: str = ""


class Checkout:
    """The checkout service: its bus, its orders table, and a signal when an order ends."""

    def __init__(self, config: ShopConfig) -> None:
        self.config = config
        # Its HTTP endpoint publishes OrderPlaced in a transaction, outside any handler.
        self.bus = config.bus("checkout", publishes=[OrderPlaced])
        # Its tables exist before any handler runs, however the bus is started.
        self.bus.on_start(self.setup)
        #: Set whenever an order reaches a final state (the driver and the page wait on it).
        self.changed = asyncio.Event()
        self.finished = 0
        _subscribe(self)

    async def setup(self) -> None:
        """Create the orders table. (the bus's start hook)."""
        await create_tables(self.bus, TABLES)

    async def place(self, order: NewOrder, key: str) -> tuple[dict[str, Any], bool]:
        """Place ``order`` once per idempotency ``key``; returns it and whether it is new."""
        order_id = f"o-{uuid.uuid4().hex[:10]}"
        now = time.time()
        async with self.bus.transaction() as tx:
            # On a retried key the insert does nothing and no event is written: the unique
            # column decides, in the database, even for two copies of a request at once.
            await execute(
                tx.db,
                "INSERT INTO orders (order_id, idempotency_key, customer, sku, quantity, amount,"
                " status, placed_at) VALUES (?, ?, ?, ?, ?, ?, 'placed', ?)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                order_id,
                key,
                order.customer,
                order.sku,
                order.quantity,
                order.amount,
                now,
            )
            [(stored_id,)] = await fetch(
                tx.db, "SELECT order_id FROM orders WHERE idempotency_key = ?", key
            )
            created = stored_id == order_id
            if created:
                await execute(
                    tx.db,
                    "INSERT INTO order_history (order_id, step, at) VALUES (?, 'placed', ?)",
                    order_id,
                    now,
                )
                # An event, not a command: checkout states a fact and does not care who
                # fulfils, notifies or audits. Fulfilment owns the outcome and subscribes, so
                # the coupling sits on its side; checkout never learns who listens.
                await tx.publish(
                    OrderPlaced(
                        order_id=order_id,
                        customer=order.customer,
                        sku=order.sku,
                        quantity=order.quantity,
                        amount=order.amount,
                        card=order.card,
                    ),
                    correlation_id=order_id,
                    idempotency_key=f"placed-{order_id}",
                )
        self.config.say(f"checkout      placed {stored_id} ({'new' if created else 'a retry'})")
        found = await self.get(stored_id)
        assert found is not None
        return found, created

    async def get(self, order_id: str) -> dict[str, Any] | None:
        """One order, or ``None``."""
        rows = await self.query(f"SELECT {COLUMNS} FROM orders WHERE order_id = ?", order_id)
        return rows[0] if rows else None

    async def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest orders first."""
        return await self.query(
            f"SELECT {COLUMNS} FROM orders ORDER BY placed_at DESC, order_id LIMIT ?", limit
        )

    async def count_final(self) -> int:
        """How many orders reached a final state."""
        async with self.bus.transaction() as tx:
            [(count,)] = await fetch(
                tx.db, "SELECT COUNT(*) FROM orders WHERE status IN ('fulfilled', 'cancelled')"
            )
        return int(count)

    async def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Orders as dicts, each with its history (read in a store transaction that writes
        nothing)."""
        async with self.bus.transaction() as tx:
            rows = await fetch(tx.db, sql, *args)
            ids = [row[0] for row in rows]
            marks = ", ".join("?" * len(ids))
            steps = (
                await fetch(
                    tx.db,
                    f"SELECT order_id, step, at FROM order_history WHERE order_id IN ({marks})"
                    " ORDER BY at",
                    *ids,
                )
                if ids
                else []
            )
        names = [c.strip() for c in COLUMNS.split(",")]
        orders = {row[0]: dict(zip(names, row, strict=True)) for row in rows}
        for order in orders.values():
            order["history"] = []
        for order_id, step, at in steps:
            orders[order_id]["history"].append([step, at])
        return list(orders.values())


def _subscribe(checkout: Checkout) -> None:
    bus, config = checkout.bus, checkout.config

    # Events: the saga announces progress and outcomes as facts; checkout chose to record
    # them for its customers (a dependency checkout carries, the saga does not know it).
    @bus.event_subscriber
    async def progressed(evt: FulfilmentProgressed, ctx: Context) -> None:
        await _record(ctx, evt.order_id, evt.step)
        await config.faults.work("checkout", ctx)

    @bus.event_subscriber
    async def fulfilled(evt: OrderFulfilled, ctx: Context) -> None:
        await _record(ctx, evt.order_id, "fulfilled", final=("fulfilled", ""))
        await config.faults.work("checkout", ctx)
        config.say(f"checkout      {evt.order_id} fulfilled")
        _finished(checkout)

    @bus.event_subscriber
    async def cancelled(evt: OrderCancelled, ctx: Context) -> None:
        final = ("cancelled", evt.reason)
        await _record(ctx, evt.order_id, f"cancelled: {evt.reason}", final=final)
        await config.faults.work("checkout", ctx)
        config.say(f"checkout      {evt.order_id} cancelled: {evt.reason}")
        _finished(checkout)


async def _record(
    ctx: Context, order_id: str, step: str, final: tuple[str, str] | None = None
) -> None:
    """Add ``step`` to the order's history and set its status. Each write is one statement, so
    concurrent events of one order cannot undo each other, and a final status is never
    overwritten by a late progress note (events of one order may arrive in any order)."""
    await execute(
        ctx.db,
        "INSERT INTO order_history (order_id, step, at) VALUES (?, ?, ?)"
        " ON CONFLICT (order_id, step) DO NOTHING",
        order_id,
        step,
        time.time(),
    )
    if final is not None:
        await execute(
            ctx.db,
            "UPDATE orders SET status = ?, reason = ? WHERE order_id = ?",
            *final,
            order_id,
        )
    else:
        await execute(
            ctx.db,
            "UPDATE orders SET status = ? WHERE order_id = ?"
            " AND status NOT IN ('fulfilled', 'cancelled')",
            step,
            order_id,
        )


def _finished(checkout: Checkout) -> None:
    checkout.finished += 1
    checkout.changed.set()


def make(config: ShopConfig) -> Checkout:
    """The checkout service."""
    return Checkout(config)


def bus() -> Bus:
    """The checkout service's bus, configured from the environment (see
    :meth:`ShopConfig.from_env`), for ``busline map|lint|run sample_app.checkout:bus``."""
    return make(ShopConfig.from_env()).bus  # type: ignore[attr-defined,no-any-return]
