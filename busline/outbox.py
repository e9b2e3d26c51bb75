"""The transactional outbox: outgoing messages are written as rows in the same database
transaction as the work that caused them, sent once it commits, then marked dispatched.

Commit first, then send, then acknowledge: a crash anywhere leaves either nothing (rolled back) or
committed rows that the :class:`~busline.relay.Relay` sends later. Messages of one transaction are
sent in the order they were sent in it. Delivery is at-least-once (a crash after the broker
confirmed but before the row was marked means the relay sends it again), which consumers with a
store turn into effects applied exactly once through their inbox.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from busline.clock import Clock
from busline.context import OutgoingMessage
from busline.envelope import new_message_id
from busline.inbox import check_retention, retry_window_of
from busline.marking import DispatchMarker
from busline.messages import Message
from busline.relay import Relay, describe
from busline.stores import (
    NestedTransactionError,
    OutboxRow,
    Store,
    StoreError,
    StoreSettings,
    StoreTransaction,
    check_store_url,
    open_store,
)
from busline.stores.rows import outbox_values, transaction_values
from busline.urls import mask_url

if TYPE_CHECKING:
    from busline.bus import Bus

log = logging.getLogger("busline.outbox")

#: The busline transaction open in the current task, if any (to refuse nesting clearly).
_open_transaction: ContextVar[list[bool] | None] = ContextVar("busline_transaction", default=None)


class StoredMessage(Message, wire_name="busline.StoredMessage"):
    """What :attr:`OutgoingMessage.message` holds for a message the relay sends from its row:
    only the envelope (body included) was stored, not the Python object."""


#: Shared by every row the relay sends (it holds nothing).
_STORED = StoredMessage()


class Outbox:
    """A bus's store, its outbox and its relay.

    Args:
        bus: The bus whose messages this outbox holds.
        url: The store URL (``sqlite:///...``, ``postgresql://...``).
        settings: Leases, relay pacing and retention.
    """

    def __init__(self, bus: Bus, url: str, settings: StoreSettings) -> None:
        check_store_url(url)
        self._bus = bus
        self.url = url
        self.settings = settings
        self._store: Store | None = None
        self._relay: Relay | None = None
        self._marker: DispatchMarker | None = None

    def __repr__(self) -> str:
        return f"<Outbox {mask_url(self.url)!r}>"

    @property
    def store(self) -> Store:
        """The open store (raises before start and after stop)."""
        if self._store is None:
            raise StoreError(f"the store {mask_url(self.url)!r} is not open: start the bus first")
        return self._store

    @property
    def clock(self) -> Clock:
        """The bus's clock (leases, retention and inbox times are read from it)."""
        return self._bus.clock

    @property
    def relay(self) -> Relay:
        """The background relay (raises before start and after stop)."""
        if self._relay is None:
            raise StoreError("the outbox relay runs only while the bus does")
        return self._relay

    async def start(self) -> None:
        """Check the retention settings, open (and migrate) the store, start the relay."""
        check_retention(self.settings, retry_window_of(self._bus))
        store = open_store(self.url, self.settings)
        await store.open()
        self._store = store
        self._marker = DispatchMarker(store, self._bus.clock)
        self._relay = Relay(
            self._bus.service, store, self._send_row, self._bus.clock, self.settings
        )
        self._relay.start()
        log.info("bus %s: outbox on %s", self._bus.service, mask_url(self.url))

    async def stop(self) -> None:
        """Stop the relay and close the store; failures are logged, not raised."""
        relay, self._relay = self._relay, None
        marker, self._marker = self._marker, None
        store, self._store = self._store, None
        try:
            if relay is not None:
                await relay.stop()
        except Exception:
            log.exception("the outbox relay did not stop cleanly")
        if marker is not None:
            await marker.close()
        try:
            if store is not None:
                await store.close()
        except Exception:
            log.exception("the store %s did not close cleanly", mask_url(self.url))

    @asynccontextmanager
    async def session(self, outgoing: list[OutgoingMessage]) -> AsyncIterator[StoreTransaction]:
        """One unit of work: a store transaction into which ``outgoing`` is written at the end.

        The block appends to ``outgoing`` while it runs; when it ends without error, the messages
        become outbox rows, the transaction commits, they are sent in order and marked
        dispatched, and ``outgoing`` is emptied. If the block raises, the transaction rolls back
        and ``outgoing`` is emptied: nothing is written, nothing leaves.
        """
        current = _open_transaction.get()
        if current is not None and current[0]:
            raise NestedTransactionError(
                "a busline transaction is already open here (in a handler, write through ctx.db "
                "and send with ctx.send; inside bus.transaction(), use its tx)"
            )
        marker = [True]
        token = _open_transaction.set(marker)
        tx_id = new_message_id()
        store = self.store
        try:
            async with store.transaction() as tx:
                yield tx
                if outgoing:
                    await self._write_outbox(tx, tx_id, outgoing)
        except BaseException:
            outgoing.clear()
            raise
        finally:
            marker[0] = False
            _open_transaction.reset(token)
        committed = list(outgoing)
        outgoing.clear()
        if committed:
            await self._dispatch_committed(store, tx_id, committed)

    async def _write_outbox(
        self, tx: StoreTransaction, tx_id: str, outgoing: list[OutgoingMessage]
    ) -> None:
        now = self._bus.clock.now()
        # The relay leaves the rows to this instance for a lease, then takes over.
        available_at = now + self.settings.dispatch_lease
        # Every message of a transaction comes from this bus: its service is their source.
        source = outgoing[0].envelope.source
        await tx.add_outbox(
            transaction_values(tx_id, source, len(outgoing), now, available_at),
            [
                outbox_values(tx_id, i, out.kind, out.destination, out.envelope, now)
                for i, out in enumerate(outgoing)
            ],
        )

    async def _dispatch_committed(
        self, store: Store, tx_id: str, committed: list[OutgoingMessage]
    ) -> None:
        """Send a committed transaction's messages in order; whatever fails is the relay's."""
        sent = 0
        error: Exception | None = None
        for out in committed:
            try:
                await self._bus.dispatch_outgoing([out])
            except Exception as exc:
                error = exc
                break
            sent += 1
        try:
            if error is None:
                await self._mark_dispatched(tx_id)
            else:
                await store.note_failed_dispatch(
                    tx_id, sent, describe(error), self._bus.clock.now()
                )
        except Exception:
            log.warning(
                "could not record the dispatch of outbox transaction %s; the relay will send "
                "its messages again after %.0fs (consumers' inboxes drop the duplicates)",
                tx_id,
                self.settings.dispatch_lease,
                exc_info=True,
            )
        if error is not None:
            log.warning(
                "%d of %d message(s) of committed transaction %s are not sent yet (%s); the "
                "outbox relay will send them",
                len(committed) - sent,
                len(committed),
                tx_id,
                describe(error),
            )
            if self._relay is not None:
                self._relay.wake()

    async def _mark_dispatched(self, tx_id: str) -> None:
        marker = self._marker
        if marker is None:
            raise StoreError("the outbox stopped before the dispatch could be recorded")
        await marker.mark(tx_id)

    async def _send_row(self, row: OutboxRow) -> None:
        out = OutgoingMessage(row.kind, row.destination, _STORED, row.envelope)
        await self._bus.dispatch_outgoing([out])

    async def purge(self) -> int:
        """Delete dispatched rows and inbox records older than their retention now; return how
        many went (the relay also does this every ``cleanup_interval``)."""
        return await self.relay.purge()
