"""The store middleware: each message is handled in one database transaction that holds the
handler's writes (through ``ctx.db``), the inbox record of its idempotency key and its outgoing
messages (the outbox). Commit, then send, then the dispatcher acknowledges.

It is the innermost of busline's own middleware, so every retry attempt gets a fresh transaction.
A duplicate (key already in the inbox) is acknowledged without running the handler; a handler
that raises rolls everything back, so nothing of it is stored and nothing leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from busline.context import DB_ITEM, Context
from busline.inbox import first_time
from busline.middleware import ConsumeNext, Middleware

if TYPE_CHECKING:
    from busline.outbox import Outbox


class StoreMiddleware(Middleware):
    """Runs the handler inside an outbox session (see :meth:`busline.outbox.Outbox.session`)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Open the transaction, skip a duplicate, run the handler, write its outgoing messages,
        commit and send them (emptying ``ctx.outgoing`` so they are not sent twice)."""
        async with self.outbox.session(ctx.outgoing) as tx:
            if not await first_time(tx, ctx, self.outbox.clock.now()):
                return
            ctx.items[DB_ITEM] = tx.connection
            try:
                await call_next(ctx)
            finally:
                # The connection goes back to its pool when the transaction ends.
                ctx.items.pop(DB_ITEM, None)
