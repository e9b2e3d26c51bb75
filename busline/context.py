"""What a handler sees besides its message: ids, headers, and ``send``/``publish`` that inherit
the conversation. Outgoing messages are held until the handler succeeds, then dispatched before
the incoming message is acknowledged, so a failed handler sends nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from busline.envelope import Envelope
from busline.messages import Command, Event, Message, MessageKind
from busline.stores.base import NoStoreError

if TYPE_CHECKING:
    from busline.bus import Bus
    from busline.registry import HandlerSpec

#: The ``ctx.items`` key under which the store middleware puts the open transaction's connection.
DB_ITEM = "busline.db"


@dataclass(slots=True)
class OutgoingMessage:
    """A message on its way out: what it is, where it goes, and its envelope."""

    kind: MessageKind
    #: The command's queue or the event's exchange (both are the wire name).
    destination: str
    message: Message
    envelope: Envelope


class Context:
    """The scope of one message being handled."""

    __slots__ = (
        "_bus",
        "attempt",
        "envelope",
        "handler",
        "items",
        "message",
        "outgoing",
        "redelivered",
    )

    def __init__(
        self,
        bus: Bus,
        envelope: Envelope,
        message: Message,
        handler: HandlerSpec,
        redelivered: bool = False,
    ) -> None:
        self._bus = bus
        #: The incoming message's envelope, as received.
        self.envelope = envelope
        #: The decoded incoming message.
        self.message = message
        #: The handler being run.
        self.handler = handler
        #: Whether the broker delivered this message before.
        self.redelivered = redelivered
        #: Messages sent or published by the handler, dispatched once it succeeds.
        self.outgoing: list[OutgoingMessage] = []
        #: Free space for middleware to share per-message state (e.g. an open transaction).
        self.items: dict[str, Any] = {}
        #: Which attempt at handling this message this is, counting from 1 across immediate
        #: and delayed retries.
        self.attempt = envelope.attempt

    @property
    def message_id(self) -> str:
        """The incoming message's id."""
        return self.envelope.message_id

    @property
    def message_type(self) -> str:
        """The incoming message's wire name."""
        return self.envelope.message_type

    @property
    def correlation_id(self) -> str:
        """The correlation id, inherited by everything this handler sends."""
        return self.envelope.correlation_id

    @property
    def causation_id(self) -> str | None:
        """The id of the message that caused the incoming one (``None`` for a first message)."""
        return self.envelope.causation_id

    @property
    def conversation_id(self) -> str:
        """The id of the first message of the causal chain."""
        return self.envelope.conversation_id

    @property
    def idempotency_key(self) -> str:
        """The key duplicates of the incoming message share (its message id unless set)."""
        return self.envelope.effective_idempotency_key

    @property
    def headers(self) -> dict[str, Any]:
        """The incoming message's extra headers (not busline's own envelope headers)."""
        return self.envelope.headers

    @property
    def service(self) -> str:
        """The service handling the message."""
        return self._bus.service

    @property
    def db(self) -> Any:
        """The connection of the transaction this message is handled in, when the bus has a
        store: an ``aiosqlite.Connection`` (SQLite) or an ``asyncpg`` connection (PostgreSQL).

        Write the handler's own data through it: it commits together with the inbox record and
        the outgoing messages, or not at all. Don't commit or roll back through it.
        """
        db = self.items.get(DB_ITEM)
        if db is None:
            if self._bus.outbox is None:
                raise NoStoreError(
                    f"ctx.db needs a store: Bus({self._bus.service!r}, ..., "
                    f"store='sqlite:///app.db' or 'postgresql://...')"
                )
            raise NoStoreError("ctx.db is only available while the handler runs")
        return db

    async def send(
        self,
        command: Command,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Send a command once this handler succeeds; return its message id."""
        out = self._bus.prepare(
            command, MessageKind.COMMAND, self.envelope, None, idempotency_key, headers
        )
        self.outgoing.append(out)
        return out.envelope.message_id

    async def publish(
        self,
        event: Event,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish an event once this handler succeeds; return its message id."""
        out = self._bus.prepare(
            event, MessageKind.EVENT, self.envelope, None, idempotency_key, headers
        )
        self.outgoing.append(out)
        return out.envelope.message_id

    def __repr__(self) -> str:
        return (
            f"<Context {self.message_type} id={self.message_id} "
            f"correlation={self.correlation_id} attempt={self.attempt}>"
        )
