"""Handling in a store transaction: each attempt at a message runs in one database transaction
that holds the handler's writes (through ``ctx.db``), the inbox record of its idempotency key and
its outgoing messages (the outbox rows). The transaction commits when the handler returns; the
messages are sent after that by :class:`~busline.sending.SendAfterSuccess`.

It sits inside the retry middleware, so every attempt gets a fresh transaction. A duplicate (key
already in the inbox) is acknowledged without running the handler; a handler that raises rolls
everything back, so nothing of it is stored and nothing leaves.
"""

from __future__ import annotations

from busline.context import DB_ITEM, STORE_TX_ITEM, Context
from busline.inbox import inbox_record, log_duplicate
from busline.middleware import ConsumeNext, Middleware
from busline.storage import StoreRuntime


class StoreMiddleware(Middleware):
    """Runs each attempt inside a unit of work of the bus's store (see
    :meth:`busline.storage.StoreRuntime.session`)."""

    def __init__(self, storage: StoreRuntime) -> None:
        self.storage = storage

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Open the transaction, skip a duplicate, run the handler, write its outgoing messages
        and commit; then ``ctx.committed`` names the outbox transaction to send."""
        storage = self.storage
        # The transaction starts with the inbox record, in the same round trip where it can.
        async with storage.session(ctx.outgoing, inbox_record(ctx, storage.clock.now())) as work:
            if not work.tx.first_time:
                log_duplicate(ctx)
                return
            ctx.items[DB_ITEM] = work.tx.connection
            ctx.items[STORE_TX_ITEM] = work.tx
            try:
                await call_next(ctx)
            finally:
                # The connection goes back to its pool when the transaction ends.
                ctx.items.pop(DB_ITEM, None)
                ctx.items.pop(STORE_TX_ITEM, None)
        if work.written:
            ctx.committed = work.tx_id
