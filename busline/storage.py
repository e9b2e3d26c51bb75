"""A bus's store at run time: the open store, its outbox relay and its dispatch marker, and the
unit of work that writes a handler's or transaction's messages into the outbox.

Commit first, then send, then acknowledge: a crash anywhere leaves either nothing (rolled back) or
committed rows that the :class:`~busline.relay.Relay` sends later. Messages of one transaction are
sent in the order they were sent in it. Delivery is at-least-once (a crash after the broker
confirmed but before the row was marked means the relay sends it again), which consumers with a
store turn into effects applied exactly once through their inbox.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

from busline.clock import Clock
from busline.envelope import new_message_id
from busline.errors import PublishError
from busline.inbox import check_retention
from busline.marking import DispatchMarker
from busline.outgoing import OutgoingMessage
from busline.publishing import Publisher
from busline.relay import Relay, describe
from busline.stores import (
    InboxRecord,
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

log = logging.getLogger("busline.storage")

#: The busline transaction open in the current task, if any (to refuse nesting clearly).
_open_transaction: ContextVar[list[bool] | None] = ContextVar("busline_transaction", default=None)


class UnitOfWork:
    """One open store transaction and the messages to write into its outbox when it ends."""

    __slots__ = ("outgoing", "tx", "tx_id", "written")

    def __init__(self, tx: StoreTransaction, outgoing: list[OutgoingMessage]) -> None:
        self.tx = tx
        self.outgoing = outgoing
        self.tx_id = new_message_id()
        #: Whether outbox rows were written (then sent after the commit, as ``tx_id``).
        self.written = False


class StoreRuntime:
    """The store of one bus while it runs: store, relay, dispatch marker.

    Args:
        url: The store URL (``sqlite:///...``, ``postgresql://...``).
        settings: Leases, relay pacing and retention.
        service: The bus's service (its messages' source; the relay sends only those).
        clock: Leases, retention and inbox times are read from it.
        publisher: Where committed messages go (the bus's publish chain).
    """

    def __init__(
        self,
        url: str,
        settings: StoreSettings,
        service: str,
        clock: Clock,
        publisher: Publisher,
    ) -> None:
        check_store_url(url)
        self.url = url
        self.settings = settings
        self.service = service
        self.clock = clock
        self._publisher = publisher
        self._store: Store | None = None
        self._relay: Relay | None = None
        self._marker: DispatchMarker | None = None
        #: Called with the number of pending outbox messages each time the relay counts them.
        self.report_backlog: Callable[[int], None] | None = None

    def __repr__(self) -> str:
        return f"<StoreRuntime {mask_url(self.url)!r}>"

    @property
    def store(self) -> Store:
        """The open store (raises before start and after stop)."""
        if self._store is None:
            raise StoreError(f"the store {mask_url(self.url)!r} is not open: start the bus first")
        return self._store

    @property
    def relay(self) -> Relay:
        """The background relay (raises before start and after stop)."""
        if self._relay is None:
            raise StoreError("the outbox relay runs only while the bus does")
        return self._relay

    async def start(self, retry_window: float) -> None:
        """Check the retention settings against ``retry_window`` (the longest time the bus may
        retry a message), open (and migrate) the store, start the relay."""
        check_retention(self.settings, retry_window)
        store = open_store(self.url, self.settings)
        await store.open()
        self._store = store
        self._marker = DispatchMarker(store, self.clock)
        self._relay = Relay(self.service, store, self._send_row, self.clock, self.settings)
        self._relay.report_backlog = self.report_backlog
        self._relay.start()
        log.info("bus %s: store on %s", self.service, mask_url(self.url))

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
    async def session(
        self, outgoing: list[OutgoingMessage], inbox: InboxRecord | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """One unit of work: a store transaction into which ``outgoing`` is written at the end.

        Given ``inbox``, the transaction starts by recording it; ``work.tx.first_time`` is
        ``False`` for a duplicate (leave the block: nothing is written).

        The block appends to ``outgoing`` while it runs; when it ends without error, the
        messages become outbox rows and the transaction commits (``written`` tells whether
        there were any): send them with :meth:`dispatch_committed`. If the block raises, the
        transaction rolls back and ``outgoing`` is emptied: nothing is written, nothing leaves.
        """
        current = _open_transaction.get()
        if current is not None and current[0]:
            raise NestedTransactionError(
                "a busline transaction is already open here (in a handler, write through ctx.db "
                "and send with ctx.send; inside bus.transaction(), use its tx)"
            )
        marker = [True]
        token = _open_transaction.set(marker)
        try:
            async with self.store.transaction(inbox) as tx:
                work = UnitOfWork(tx, outgoing)
                yield work
                if outgoing:
                    await self._write_outbox(work)
        except BaseException:
            outgoing.clear()
            raise
        finally:
            marker[0] = False
            _open_transaction.reset(token)

    async def _write_outbox(self, work: UnitOfWork) -> None:
        now = self.clock.now()
        # The relay leaves the rows to this instance for a lease, then takes over.
        available_at = now + self.settings.dispatch_lease
        outgoing = work.outgoing
        # Every message of a transaction comes from this bus: its service is their source.
        source = outgoing[0].envelope.source
        # The last write of the unit of work: the store may send it with the commit.
        await work.tx.add_outbox_last(
            transaction_values(work.tx_id, source, len(outgoing), now, available_at),
            [
                outbox_values(work.tx_id, i, out.kind, out.destination, out.envelope, now)
                for i, out in enumerate(outgoing)
            ],
        )
        work.written = True

    async def dispatch_committed(self, tx_id: str, committed: list[OutgoingMessage]) -> None:
        """Send a committed transaction's messages in order and mark it dispatched; whatever
        cannot be sent is noted on the transaction and left to the relay. Never raises."""
        sent, error = await self._send_in_order(committed)
        try:
            if error is None:
                await self._mark_dispatched(tx_id)
            else:
                await self.store.note_failed_dispatch(
                    tx_id, sent, describe(error), self.clock.now()
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

    async def _send_in_order(
        self, committed: list[OutgoingMessage]
    ) -> tuple[int, Exception | None]:
        """Send until the first failure; return how many went, and the failure if any."""
        if not self._publisher.connected:
            # Committed already: the relay sends them once the broker is back, so nobody waits
            # here for the send timeout (an HTTP endpoint in bus.transaction(), say).
            return 0, PublishError("no connection to the broker right now")
        for sent, out in enumerate(committed):
            try:
                await self._publisher.publish(out)
            except Exception as exc:
                return sent, exc
        return len(committed), None

    async def _mark_dispatched(self, tx_id: str) -> None:
        marker = self._marker
        if marker is None:
            raise StoreError("the store stopped before the dispatch could be recorded")
        await marker.mark(tx_id)

    async def _send_row(self, row: OutboxRow) -> None:
        """The relay's way back in: the stored envelope goes through the publish chain."""
        await self._publisher.publish(
            OutgoingMessage(row.kind, row.destination, None, row.envelope, relayed=True)
        )

    async def purge(self) -> int:
        """Delete dispatched rows and inbox records older than their retention now; return how
        many went (the relay also does this every ``cleanup_interval``)."""
        return await self.relay.purge()
