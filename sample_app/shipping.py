"""shipping: sends parcels, on request.

``ShipOrder`` is a **command**: the saga cares that the parcel leaves and must hear about it,
so it asks shipping and depends on it; shipping knows nothing of payments or stock. It answers
with the **event** ``OrderShipped``, a fact the saga waits for (and anyone else may hear).
"""

from __future__ import annotations

from busline import Bus, Context
from sample_app.config import ShopConfig
from sample_app.messages import OrderShipped, ShipOrder
from sample_app.storage import create_tables, execute

TABLES = (
    "CREATE TABLE IF NOT EXISTS shipments (order_id TEXT PRIMARY KEY, customer TEXT NOT NULL,"
    " tracking TEXT NOT NULL)",
)


class Shipping:
    """The shipping service."""

    def __init__(self, config: ShopConfig) -> None:
        self.bus = bus = config.bus("shipping")
        # Its tables exist before any handler runs, however the bus is started.
        bus.on_start(self.setup)
        faults, say = config.faults, config.say

        @bus.command_handler(publishes=[OrderShipped])
        async def ship(cmd: ShipOrder, ctx: Context) -> None:
            tracking = f"TRK-{cmd.order_id.removeprefix('o-').upper()}"
            await execute(
                ctx.db,
                "INSERT INTO shipments (order_id, customer, tracking) VALUES (?, ?, ?)",
                cmd.order_id,
                cmd.customer,
                tracking,
            )
            await faults.work("shipping", ctx)
            say(f"shipping      {cmd.order_id} shipped as {tracking}")
            await ctx.publish(OrderShipped(order_id=cmd.order_id, tracking=tracking))

    async def setup(self) -> None:
        """Create the shipments table. (the bus's start hook)."""
        await create_tables(self.bus, TABLES)


def make(config: ShopConfig) -> Shipping:
    """The shipping service."""
    return Shipping(config)


def bus() -> Bus:
    """The shipping service's bus, configured from the environment (see
    :meth:`ShopConfig.from_env`), for ``busline map|lint|run sample_app.shipping:bus``."""
    return make(ShopConfig.from_env()).bus  # type: ignore[attr-defined,no-any-return]
