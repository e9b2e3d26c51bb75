"""payment: a general service that charges and refunds cards, on request.

It offers **commands** (``RetrievePayment``, ``RefundPayment``) because many callers could use
it and each caller cares that its request is carried out: the callers depend on payment, never
the other way round. It answers with **events** (``PaymentRetrieved``, ``PaymentDeclined``,
``PaymentRefunded``): facts about what it did, for whoever asked or wants to know.

A double charge is impossible twice over: the saga sends each charge with the idempotency key
``charge-<order>``, which payment's inbox takes once, and the charges table is keyed by order.
"""

from __future__ import annotations

from busline import Bus, Context
from sample_app.config import ShopConfig
from sample_app.messages import (
    PaymentDeclined,
    PaymentRefunded,
    PaymentRetrieved,
    RefundPayment,
    RetrievePayment,
)
from sample_app.storage import create_tables, execute, fetch

#: A card number that the gateway always declines (like a payment provider's test cards).
DECLINED_CARD = "4000 0000 0000 0002"

TABLES = (
    # status: charged, declined, refunded, or void (refunded before any charge was asked for).
    "CREATE TABLE IF NOT EXISTS charges (order_id TEXT PRIMARY KEY, customer TEXT NOT NULL,"
    " amount DOUBLE PRECISION NOT NULL, status TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS refunds (order_id TEXT PRIMARY KEY,"
    " amount DOUBLE PRECISION NOT NULL)",
)


class Payment:
    """The payment service."""

    def __init__(self, config: ShopConfig) -> None:
        self.bus = bus = config.bus("payment")
        # Its tables exist before any handler runs, however the bus is started.
        bus.on_start(self.setup)
        faults, say = config.faults, config.say

        @bus.command_handler(publishes=[PaymentRetrieved, PaymentDeclined])
        async def retrieve(cmd: RetrievePayment, ctx: Context) -> None:
            rows = await fetch(
                ctx.db, "SELECT status FROM charges WHERE order_id = ?", cmd.order_id
            )
            if rows:  # refunded before it was charged (the saga gave up first): never charge
                await ctx.publish(PaymentDeclined(order_id=cmd.order_id, reason="order void"))
                return
            declined = cmd.card == DECLINED_CARD or faults.declines(cmd.order_id)
            status = "declined" if declined else "charged"
            await execute(
                ctx.db,
                "INSERT INTO charges (order_id, customer, amount, status) VALUES (?, ?, ?, ?)",
                cmd.order_id,
                cmd.customer,
                cmd.amount,
                status,
            )
            await faults.work("payment", ctx)
            say(f"payment       {cmd.order_id} {status} {cmd.amount:.2f}")
            if declined:
                await ctx.publish(PaymentDeclined(order_id=cmd.order_id, reason="card declined"))
            else:
                await ctx.publish(PaymentRetrieved(order_id=cmd.order_id, amount=cmd.amount))

        @bus.command_handler(publishes=[PaymentRefunded])
        async def refund(cmd: RefundPayment, ctx: Context) -> None:
            rows = await fetch(
                ctx.db, "SELECT status, amount FROM charges WHERE order_id = ?", cmd.order_id
            )
            amount = rows[0][1] if rows and rows[0][0] == "charged" else 0.0
            if rows:
                await execute(
                    ctx.db,
                    "UPDATE charges SET status = ? WHERE order_id = ?",
                    "refunded" if amount else rows[0][0],
                    cmd.order_id,
                )
            else:  # the refund overtook the charge: leave a marker so the charge never happens
                await execute(
                    ctx.db,
                    "INSERT INTO charges (order_id, customer, amount, status)"
                    " VALUES (?, '', 0, 'void')",
                    cmd.order_id,
                )
            await execute(
                ctx.db, "INSERT INTO refunds (order_id, amount) VALUES (?, ?)", cmd.order_id, amount
            )
            await faults.work("payment", ctx)
            say(f"payment       {cmd.order_id} refunded {amount:.2f}")
            await ctx.publish(PaymentRefunded(order_id=cmd.order_id, amount=amount))

    async def setup(self) -> None:
        """Create the charges and refunds tables. (the bus's start hook)."""
        await create_tables(self.bus, TABLES)


def make(config: ShopConfig) -> Payment:
    """The payment service."""
    return Payment(config)


def bus() -> Bus:
    """The payment service's bus, configured from the environment (see
    :meth:`ShopConfig.from_env`), for ``busline map|lint|run sample_app.payment:bus``."""
    return make(ShopConfig.from_env()).bus  # type: ignore[attr-defined,no-any-return]
