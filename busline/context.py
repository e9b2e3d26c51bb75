"""What a handler sees besides its message: ids, headers, and ``send``/``publish`` that inherit
the conversation. Outgoing messages are held until the handler succeeds (and, with a store, until
its transaction commits), then sent before the incoming message is acknowledged, so a failed
handler sends nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from busline.envelope import Envelope
from busline.messages import Command, Event, Message, MessageKind
from busline.outcomes import NO_OBSERVERS, Outcome, OutcomeKind, Outcomes
from busline.outgoing import MessageFactory, OutgoingMessage
from busline.stores.errors import NoStoreError

if TYPE_CHECKING:
    from busline.registry import HandlerSpec

#: The ``ctx.items`` key under which the store middleware puts the open transaction's connection.
DB_ITEM = "busline.db"
#: The ``ctx.items`` key under which the store middleware puts the open store transaction.
STORE_TX_ITEM = "busline.store-transaction"


class HandlerServices:
    """What every context of one bus shares: built once at start, not per message."""

    __slots__ = ("factory", "has_store", "outcomes", "service")

    def __init__(
        self,
        service: str,
        factory: MessageFactory,
        has_store: bool = False,
        outcomes: Outcomes = NO_OBSERVERS,
    ) -> None:
        self.service = service
        self.factory = factory
        self.has_store = has_store
        self.outcomes = outcomes


class Context:
    """The scope of one message being handled."""

    __slots__ = (
        "_services",
        "attempt",
        "committed",
        "decided",
        "envelope",
        "handler",
        "items",
        "message",
        "outcome",
        "outgoing",
        "redelivered",
    )

    def __init__(
        self,
        services: HandlerServices,
        envelope: Envelope,
        message: Message,
        handler: HandlerSpec,
        redelivered: bool = False,
    ) -> None:
        self._services = services
        #: The incoming message's envelope, as received.
        self.envelope = envelope
        #: The decoded incoming message.
        self.message = message
        #: The handler being run.
        self.handler = handler
        #: Whether the broker delivered this message before.
        self.redelivered = redelivered
        #: Messages sent or published by the handler, held until they may leave.
        self.outgoing: list[OutgoingMessage] = []
        #: The outbox transaction id once the store committed :attr:`outgoing` (they are then
        #: sent from there, and the relay sends them if that fails).
        self.committed: str | None = None
        #: Whether the handling reached its end: succeeded, or failed with :attr:`outcome`.
        self.decided = False
        #: How the delivery will be settled when the handler failed (``DEFERRED`` or
        #: ``DEAD_LETTERED``); ``None`` when it succeeded (acknowledged).
        self.outcome: Outcome | None = None
        #: Free space for middleware to share per-attempt state (cleared between retries).
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
        return self._services.service

    @property
    def db(self) -> Any:
        """The connection of the transaction this message is handled in, when the bus has a
        store: an ``aiosqlite.Connection`` (SQLite) or an ``asyncpg`` connection (PostgreSQL).

        Write the handler's own data through it: it commits together with the inbox record and
        the outgoing messages, or not at all. Don't commit or roll back through it.
        """
        db = self.items.get(DB_ITEM)
        if db is None:
            if not self._services.has_store:
                raise NoStoreError(
                    f"ctx.db needs a store: Bus({self.service!r}, ..., "
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
        if type(command) not in self.handler.checked:  # one set lookup once the type is known
            self.handler.check_declared(type(command), MessageKind.COMMAND)
        out = self._services.factory.create(
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
        if type(event) not in self.handler.checked:  # one set lookup once the type is known
            self.handler.check_declared(type(event), MessageKind.EVENT)
        out = self._services.factory.create(
            event, MessageKind.EVENT, self.envelope, None, idempotency_key, headers
        )
        self.outgoing.append(out)
        return out.envelope.message_id

    def report_retry(self, error: BaseException, delay: float = 0.0) -> None:
        """Report that this attempt failed and is made again after ``delay`` seconds (an
        :class:`~busline.outcomes.Outcome` of kind ``RETRY``), as a retrying middleware does."""
        self.report(
            Outcome(
                OutcomeKind.RETRY,
                self.handler,
                self.envelope,
                self.attempt,
                error,
                delay=delay,
                message=self.message,
            )
        )

    def report(self, outcome: Outcome) -> None:
        """Tell middleware what became of this message (see :mod:`busline.outcomes`)."""
        outcomes = self._services.outcomes
        if outcomes:
            outcomes.report(outcome)

    def __repr__(self) -> str:
        return (
            f"<Context {self.message_type} id={self.message_id} "
            f"correlation={self.correlation_id} attempt={self.attempt}>"
        )
