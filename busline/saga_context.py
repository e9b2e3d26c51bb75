"""What a saga step sees: the message's context, plus the instance, timeouts, completion and
compensation.

Everything a step asks for is collected here and written by the step runner in the store
transaction of the message being handled: the messages it sends (into the outbox), the
compensations it records (with the state), the timeouts it requests (as scheduled outbox
messages). All of it commits together, or none of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from busline.context import Context
from busline.envelope import HEADER_TRACE_AS, Envelope
from busline.messages import Command, Message, MessageKind, kind_of, wire_name
from busline.outgoing import MessageFactory, OutgoingMessage
from busline.saga import SagaHandler

log = logging.getLogger("busline.saga")

#: Header of a timeout message: the schedule key it was requested under.
HEADER_SAGA_TIMEOUT = "busline-saga-timeout"


class RecordedUndo(msgspec.Struct, frozen=True):
    """A compensation as stored with the instance: the envelope, built when it was recorded."""

    kind: str
    destination: str
    message_id: str
    message_type: str
    correlation_id: str
    conversation_id: str
    causation_id: str | None
    idempotency_key: str | None
    timestamp: float
    source: str
    headers: dict[str, Any]
    body: bytes

    @classmethod
    def of(cls, out: OutgoingMessage) -> RecordedUndo:
        """Record ``out`` (not sent now)."""
        env = out.envelope
        return cls(
            out.kind.value,
            out.destination,
            env.message_id,
            env.message_type,
            env.correlation_id,
            env.conversation_id,
            env.causation_id,
            env.idempotency_key,
            env.timestamp,
            env.source,
            dict(env.headers),
            bytes(env.body),
        )

    def outgoing(self) -> OutgoingMessage:
        """The recorded message, ready to send (only its envelope was kept)."""
        envelope = Envelope(
            self.message_id,
            self.message_type,
            self.body,
            self.correlation_id,
            self.conversation_id,
            self.causation_id,
            self.idempotency_key,
            1,
            self.timestamp,
            self.source,
            headers=dict(self.headers),
        )
        return OutgoingMessage(MessageKind(self.kind), self.destination, None, envelope)


@dataclass(slots=True)
class RequestedTimeout:
    """A timeout a step asked for."""

    schedule_key: str
    delay: float
    out: OutgoingMessage


class SagaContext(Context):
    """The scope of one saga step: everything :class:`~busline.Context` has (it shares the
    message's scope: what the step sends joins the handler's outgoing messages), and the
    instance, its timeouts, completion and compensation."""

    __slots__ = (
        "_factory",
        "_step",
        "_timeout_types",
        "compensated",
        "compensations",
        "completed",
        "key",
        "saga",
        "timeouts",
    )

    def __init__(
        self,
        ctx: Context,
        factory: MessageFactory,
        saga: str,
        key: str,
        compensations: list[RecordedUndo],
        timeout_types: frozenset[str],
        step: SagaHandler | None = None,
    ) -> None:
        # The same scope as the message's context, not a copy of it: the lists and dicts are
        # shared, so what the step sends is written and sent with the handler's messages.
        for name in Context.__slots__:
            setattr(self, name, getattr(ctx, name))
        self._factory = factory
        self._timeout_types = timeout_types
        self._step = step
        #: The saga's name.
        self.saga = saga
        #: The instance's correlation key.
        self.key = key
        #: Compensations recorded so far, oldest first.
        self.compensations = compensations
        #: Timeouts requested by this step.
        self.timeouts: list[RequestedTimeout] = []
        #: Whether the step completed the instance (by :meth:`complete` or :meth:`compensate`).
        self.completed = False
        #: Why it was compensated, when it was.
        self.compensated: str | None = None

    @property
    def saga_id(self) -> str:
        """The instance's id: ``{saga name}/{key}``."""
        return f"{self.saga}/{self.key}"

    async def send(
        self,
        command: Command,
        *,
        compensate: Message | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Send a command once the step commits; ``compensate=`` records the message that
        undoes it, sent if the saga compensates later. Returns the command's message id."""
        message_id = await super().send(command, idempotency_key=idempotency_key, headers=headers)
        if compensate is not None:
            self.record_compensation(compensate)
        return message_id

    def record_compensation(self, undo: Message) -> None:
        """Record ``undo`` (a command or an event) to be sent if the saga compensates."""
        kind = kind_of(type(undo))
        if kind is None:
            raise TypeError(f"compensate= takes a Command or Event, got {type(undo).__name__}")
        out = self._factory.create(undo, kind, self.envelope)
        self.compensations.append(RecordedUndo.of(out))

    async def request_timeout(
        self, delay: float | timedelta, message: Command, key: str | None = None
    ) -> str:
        """Have ``message`` (a command this saga handles) delivered to this instance after
        ``delay`` (seconds or a timedelta). Requesting again with the same ``key`` (by default
        the message's wire name) replaces the pending one. Returns its message id."""
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if seconds < 0:
            raise ValueError("a timeout's delay cannot be negative")
        name = wire_name(type(message)) if kind_of(type(message)) else ""
        if name not in self._timeout_types:
            raise TypeError(
                f"saga {self.saga!r} does not handle {type(message).__name__}: a timeout is a "
                f"command the saga handles (@saga.handles({type(message).__name__}))"
            )
        self._check_declared_timeout(type(message))
        schedule_key = f"{self.saga}/{self.key}/{key or name}"
        out = self._factory.create(
            message,
            MessageKind.COMMAND,
            self.envelope,
            # A timeout fires in a new trace, linked to the step that asked for it.
            headers={HEADER_SAGA_TIMEOUT: schedule_key, HEADER_TRACE_AS: "link"},
        )
        self.timeouts = [t for t in self.timeouts if t.schedule_key != schedule_key]
        self.timeouts.append(RequestedTimeout(schedule_key, seconds, out))
        return out.envelope.message_id

    def _check_declared_timeout(self, message_type: type[Message]) -> None:
        """Log once per step and type a timeout its decorator does not declare (the map would
        not show the saga's deadline)."""
        step = self._step
        if step is None or message_type in step.timeouts or message_type in step.warned:
            return
        step.warned.add(message_type)
        log.warning(
            "saga %s: step %s requests a timeout %s without declaring it: add timeouts=[%s] to "
            "its decorator so that 'busline map' shows the deadline",
            self.saga,
            step.func.__name__,
            wire_name(message_type),
            message_type.__name__,
        )

    def complete(self) -> None:
        """End the instance when this step commits (deleted, or kept for
        ``StoreSettings.saga_retention``); its pending timeouts are dropped."""
        self.completed = True

    async def compensate(self, reason: str) -> None:
        """Send every recorded compensation once, newest first, and complete the instance.

        The compensations are written to the outbox with the step, so once it commits they are
        sent even across a crash, and the forward path never runs again.
        """
        for undo in reversed(self.compensations):
            self.outgoing.append(undo.outgoing())
        self.compensations.clear()
        self.compensated = reason or "compensated"
        self.completed = True

    def __repr__(self) -> str:
        return f"<SagaContext {self.saga_id} {self.message_type} id={self.message_id}>"
