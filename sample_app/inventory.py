"""inventory: holds and releases stock, on request.

Like payment it offers **commands** (``ReserveStock``, ``ReleaseStock``): the saga cares that
stock is held, so it asks, and carries the dependency. It answers with **events**
(``StockReserved``, ``StockShort``, ``StockReleased``): facts for whoever wants them.
"""

from __future__ import annotations

from busline import Bus, Context
from sample_app.config import ShopConfig
from sample_app.messages import (
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReserved,
    StockShort,
)
from sample_app.storage import create_tables, execute, fetch

#: A product that is never in stock (for trying a shortage from the web page).
SOLD_OUT = "sold-out-lamp"
#: Units of every other product on the shelf at the start of a run.
SHELF = 1_000_000

TABLES = (
    "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL)",
    # status: reserved, short, released, or void (released before it was reserved).
    "CREATE TABLE IF NOT EXISTS reservations (order_id TEXT PRIMARY KEY, sku TEXT NOT NULL,"
    " quantity INTEGER NOT NULL, status TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS releases (order_id TEXT PRIMARY KEY, quantity INTEGER NOT NULL)",
)


class Inventory:
    """The inventory service."""

    def __init__(self, config: ShopConfig) -> None:
        self.bus = bus = config.bus("inventory")
        # Its tables exist before any handler runs, however the bus is started.
        bus.on_start(self.setup)
        faults, say = config.faults, config.say

        @bus.command_handler(publishes=[StockReserved, StockShort])
        async def reserve(cmd: ReserveStock, ctx: Context) -> None:
            order = cmd.order_id
            if await fetch(ctx.db, "SELECT 1 FROM reservations WHERE order_id = ?", order):
                # Released before it was reserved (the saga gave up first): hold nothing.
                await ctx.publish(StockShort(order_id=order, sku=cmd.sku))
                return
            await execute(
                ctx.db,
                "INSERT INTO stock (sku, on_hand) VALUES (?, ?) ON CONFLICT (sku) DO NOTHING",
                cmd.sku,
                0 if cmd.sku == SOLD_OUT else SHELF,
            )
            [(on_hand,)] = await fetch(ctx.db, "SELECT on_hand FROM stock WHERE sku = ?", cmd.sku)
            short = on_hand < cmd.quantity or faults.short(order)
            await execute(
                ctx.db,
                "INSERT INTO reservations (order_id, sku, quantity, status) VALUES (?, ?, ?, ?)",
                order,
                cmd.sku,
                0 if short else cmd.quantity,
                "short" if short else "reserved",
            )
            if not short:
                await execute(
                    ctx.db,
                    "UPDATE stock SET on_hand = on_hand - ? WHERE sku = ?",
                    cmd.quantity,
                    cmd.sku,
                )
            await faults.work("inventory", ctx)
            say(f"inventory     {order} {'short of' if short else 'reserved'} {cmd.sku}")
            if short:
                await ctx.publish(StockShort(order_id=order, sku=cmd.sku))
            else:
                await ctx.publish(StockReserved(order_id=order))

        @bus.command_handler(publishes=[StockReleased])
        async def release(cmd: ReleaseStock, ctx: Context) -> None:
            rows = await fetch(
                ctx.db,
                "SELECT sku, quantity, status FROM reservations WHERE order_id = ?",
                cmd.order_id,
            )
            quantity = 0
            if not rows:  # the release overtook the reservation: leave a marker
                await execute(
                    ctx.db,
                    "INSERT INTO reservations (order_id, sku, quantity, status)"
                    " VALUES (?, '', 0, 'void')",
                    cmd.order_id,
                )
            elif rows[0][2] == "reserved":
                sku, quantity, _ = rows[0]
                await execute(
                    ctx.db, "UPDATE stock SET on_hand = on_hand + ? WHERE sku = ?", quantity, sku
                )
                await execute(
                    ctx.db,
                    "UPDATE reservations SET status = 'released' WHERE order_id = ?",
                    cmd.order_id,
                )
            await execute(
                ctx.db,
                "INSERT INTO releases (order_id, quantity) VALUES (?, ?)",
                cmd.order_id,
                quantity,
            )
            await faults.work("inventory", ctx)
            say(f"inventory     {cmd.order_id} released {quantity}")
            await ctx.publish(StockReleased(order_id=cmd.order_id, quantity=quantity))

    async def setup(self) -> None:
        """Create the stock and reservations tables. (the bus's start hook)."""
        await create_tables(self.bus, TABLES)


def make(config: ShopConfig) -> Inventory:
    """The inventory service."""
    return Inventory(config)


def bus() -> Bus:
    """The inventory service's bus, configured from the environment (see
    :meth:`ShopConfig.from_env`), for ``busline map|lint|run sample_app.inventory:bus``."""
    return make(ShopConfig.from_env()).bus  # type: ignore[attr-defined,no-any-return]
