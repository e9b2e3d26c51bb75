"""Sending and publishing from the service itself (outside handlers): ``bus.send``,
``bus.publish`` and ``bus.transaction()``.

Kept apart from :mod:`busline.bus` as :mod:`busline.declarations` is: that module is about
running a bus, this one about what leaves it when no handler is involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from busline.messages import Message, MessageKind
from busline.outgoing import MessageFactory
from busline.publishing import Publisher
from busline.registry import ServiceLinks
from busline.storage import StoreRuntime
from busline.stores import NoStoreError
from busline.transaction import Transaction, open_transaction


class Emitting:
    """The sending side of :class:`~busline.Bus`; a bus provides ``service``, ``storage``,
    ``links``, ``_factory`` and ``_publisher``."""

    service: str
    storage: StoreRuntime | None
    links: ServiceLinks
    _factory: MessageFactory
    _publisher: Publisher

    async def send(
        self,
        command: Message,
        *,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Send a command to its queue; return its message id once the broker confirmed it."""
        out = self._factory.create(
            command, MessageKind.COMMAND, None, correlation_id, idempotency_key, headers
        )
        if type(command) not in self.links.checked:
            self.links.check_declared(type(command), MessageKind.COMMAND)
        direct = self._publisher.direct
        if direct is not None:
            await direct.send(out.destination, out.envelope)
        else:
            await self._publisher.publish(out)
        return out.envelope.message_id

    async def publish(
        self,
        event: Message,
        *,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish an event to its subscribers; return its message id once confirmed."""
        out = self._factory.create(
            event, MessageKind.EVENT, None, correlation_id, idempotency_key, headers
        )
        if type(event) not in self.links.checked:
            self.links.check_declared(type(event), MessageKind.EVENT)
        direct = self._publisher.direct
        if direct is not None:
            await direct.publish(out.destination, out.envelope)
        else:
            await self._publisher.publish(out)
        return out.envelope.message_id

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Write data and send messages atomically, outside a handler (needs ``store=``)::

            async with bus.transaction() as tx:
                await tx.db.execute(...)  # aiosqlite or asyncpg connection, in the transaction
                await tx.send(PlaceOrder(...), idempotency_key=...)

        Messages are written to the outbox in the transaction and sent after it commits (by the
        relay if the broker is unreachable); if the block raises, nothing is kept or sent.
        """
        if self.storage is None:
            raise NoStoreError(
                f"bus.transaction() needs a store: Bus({self.service!r}, ..., "
                f"store='sqlite:///app.db' or 'postgresql://...')"
            )
        return open_transaction(self._factory, self.storage, self.links)

    @property
    def messages(self) -> MessageFactory:
        """Builds this bus's messages (what ``send``/``publish`` use); with :attr:`publisher`,
        a way to build a message now and send it later."""
        return self._factory

    @property
    def publisher(self) -> Publisher:
        """The publish chain of this bus, ending at its transport."""
        return self._publisher
