"""loyalty: awards points for fulfilled orders (choreography).

It is fed by ``OrderFulfilled``, an event that is really a **fact**, not a command in disguise:
the saga announces that an order ended well and would publish it just the same if loyalty did
not exist; nothing in the order's process waits for the points. Loyalty decided on its own that
fulfilled orders earn points (one per whole unit of money), so it carries the coupling. A
"CustomerNeedsPointsEvent" that exactly one service had to act on would have been a command.
"""

from __future__ import annotations

from busline import Bus, Context
from sample_app.config import ShopConfig
from sample_app.messages import OrderFulfilled
from sample_app.storage import create_tables, execute

TABLES = (
    "CREATE TABLE IF NOT EXISTS points (order_id TEXT PRIMARY KEY, customer TEXT NOT NULL,"
    " points INTEGER NOT NULL)",
)


class Loyalty:
    """The loyalty service."""

    def __init__(self, config: ShopConfig) -> None:
        self.bus = bus = config.bus("loyalty")
        # Its tables exist before any handler runs, however the bus is started.
        bus.on_start(self.setup)
        faults, say = config.faults, config.say

        @bus.event_subscriber
        async def earn(evt: OrderFulfilled, ctx: Context) -> None:
            points = int(evt.amount)
            await execute(
                ctx.db,
                "INSERT INTO points (order_id, customer, points) VALUES (?, ?, ?)",
                evt.order_id,
                evt.customer,
                points,
            )
            await faults.work("loyalty", ctx)
            say(f"loyalty       {evt.customer} earned {points} points ({evt.order_id})")

    async def setup(self) -> None:
        """Create the points table. (the bus's start hook)."""
        await create_tables(self.bus, TABLES)


def make(config: ShopConfig) -> Loyalty:
    """The loyalty service."""
    return Loyalty(config)


def bus() -> Bus:
    """The loyalty service's bus, configured from the environment (see
    :meth:`ShopConfig.from_env`), for ``busline map|lint|run sample_app.loyalty:bus``."""
    return make(ShopConfig.from_env()).bus  # type: ignore[attr-defined,no-any-return]
