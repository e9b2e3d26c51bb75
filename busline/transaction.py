"""``bus.transaction()``: the outbox outside a handler.

An HTTP endpoint (or any code that is not a handler) writes its data and sends messages
atomically::

    async with bus.transaction() as tx:
        await tx.db.execute("INSERT INTO orders (id) VALUES (?)", (order_id,))
        await tx.send(PlaceOrder(order_id=order_id))

The messages are written to the outbox in the same database transaction and sent once it
commits; if the block raises, nothing is written and nothing is sent. While the broker is
unreachable the block still commits and the relay sends the messages when it is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from busline.messages import Command, Event, Message, MessageKind
from busline.outgoing import MessageFactory, OutgoingMessage
from busline.registry import ServiceLinks
from busline.storage import StoreRuntime
from busline.stores import StoreError


class Transaction:
    """An open store transaction with an outbox, as yielded by ``bus.transaction()``."""

    __slots__ = ("_db", "_factory", "_links", "_open", "_outgoing")

    def __init__(
        self,
        factory: MessageFactory,
        db: Any,
        outgoing: list[OutgoingMessage],
        links: ServiceLinks | None = None,
    ) -> None:
        self._factory = factory
        self._links = links
        self._db = db
        self._outgoing = outgoing
        self._open = True

    @property
    def db(self) -> Any:
        """The transaction's connection: an ``aiosqlite.Connection`` for SQLite, an ``asyncpg``
        connection for PostgreSQL. Don't commit or roll back through it; leave the block."""
        self._check_open()
        return self._db

    async def send(
        self,
        command: Command,
        *,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Send a command once the transaction commits; return its message id."""
        return self._add(command, MessageKind.COMMAND, correlation_id, idempotency_key, headers)

    async def publish(
        self,
        event: Event,
        *,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish an event once the transaction commits; return its message id."""
        return self._add(event, MessageKind.EVENT, correlation_id, idempotency_key, headers)

    def _add(
        self,
        message: Message,
        kind: MessageKind,
        correlation_id: str | None,
        idempotency_key: str | None,
        headers: Mapping[str, Any] | None,
    ) -> str:
        self._check_open()
        out = self._factory.create(message, kind, None, correlation_id, idempotency_key, headers)
        if self._links is not None:
            self._links.check_declared(type(message), kind)
        self._outgoing.append(out)
        return out.envelope.message_id

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("this transaction is over: use tx only inside its 'async with'")

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<Transaction {state}, {len(self._outgoing)} outgoing>"


@asynccontextmanager
async def open_transaction(
    factory: MessageFactory, storage: StoreRuntime, links: ServiceLinks | None = None
) -> AsyncIterator[Transaction]:
    """The implementation of ``bus.transaction()``: a unit of work of the store, whose messages
    are sent once it committed."""
    outgoing: list[OutgoingMessage] = []
    async with storage.session(outgoing) as work:
        tx = Transaction(factory, work.tx.connection, outgoing, links)
        try:
            yield tx
        finally:
            tx._open = False
    if work.written:
        await storage.dispatch_committed(work.tx_id, outgoing)
