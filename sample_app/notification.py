"""notification: tells customers what happened to their orders (choreography).

It only **subscribes to events**: checkout and the saga state facts (an order was placed,
fulfilled, cancelled) and do not know that anyone mails the customer. The coupling sits here:
notification depends on their events, they do not depend on it. Were a message mandatory
(exactly one service *must* send a legal receipt), it would be a command such as ``SendReceipt``
aimed at its owner, not an event that one subscriber is secretly required to act on.
"""

from __future__ import annotations

from busline import Bus, Context
from sample_app.config import ShopConfig
from sample_app.messages import OrderCancelled, OrderFulfilled, OrderPlaced
from sample_app.storage import create_tables, execute

TABLES = (
    "CREATE TABLE IF NOT EXISTS notifications (order_id TEXT NOT NULL, kind TEXT NOT NULL,"
    " customer TEXT NOT NULL, text TEXT NOT NULL, PRIMARY KEY (order_id, kind))",
)


class Notification:
    """The notification service: one mail per order and kind, kept as a row."""

    def __init__(self, config: ShopConfig) -> None:
        self.bus = bus = config.bus("notification")
        # Its tables exist before any handler runs, however the bus is started.
        bus.on_start(self.setup)
        faults, say = config.faults, config.say

        async def mail(ctx: Context, order_id: str, kind: str, customer: str, text: str) -> None:
            await execute(
                ctx.db,
                "INSERT INTO notifications (order_id, kind, customer, text) VALUES (?, ?, ?, ?)",
                order_id,
                kind,
                customer,
                text,
            )
            await faults.work("notification", ctx)
            say(f"notification  {order_id} mailed {customer}: {text}")

        @bus.event_subscriber
        async def placed(evt: OrderPlaced, ctx: Context) -> None:
            await mail(ctx, evt.order_id, "placed", evt.customer, "we have your order")

        @bus.event_subscriber
        async def fulfilled(evt: OrderFulfilled, ctx: Context) -> None:
            await mail(ctx, evt.order_id, "fulfilled", evt.customer, "your order is on its way")

        @bus.event_subscriber
        async def cancelled(evt: OrderCancelled, ctx: Context) -> None:
            text = f"sorry, we cancelled your order ({evt.reason}); any charge is refunded"
            await mail(ctx, evt.order_id, "cancelled", evt.customer, text)

    async def setup(self) -> None:
        """Create the notifications table. (the bus's start hook)."""
        await create_tables(self.bus, TABLES)


def make(config: ShopConfig) -> Notification:
    """The notification service."""
    return Notification(config)


def bus() -> Bus:
    """The notification service's bus, configured from the environment (see
    :meth:`ShopConfig.from_env`), for ``busline map|lint|run sample_app.notification:bus``."""
    return make(ShopConfig.from_env()).bus  # type: ignore[attr-defined,no-any-return]
