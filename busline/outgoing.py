"""Outgoing messages: what leaves, and how it is built (ids, inherited correlation, encoding,
the size limit)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from busline.clock import Clock
from busline.codec import encode
from busline.envelope import CONTENT_TYPE_JSON, Envelope, new_message_id
from busline.errors import MessageTooLargeError
from busline.lifecycle import RUNNING, Lifecycle
from busline.messages import Message, MessageKind, kind_of


@dataclass(slots=True)
class OutgoingMessage:
    """A message on its way out: what it is, where it goes, and its envelope."""

    kind: MessageKind
    #: The command's queue or the event's exchange (both are the wire name).
    destination: str
    #: The message object; ``None`` when the outbox relay sends it from its stored row (only
    #: the envelope, body included, was stored).
    message: Message | None
    envelope: Envelope
    #: Whether the outbox relay is sending it (after a failed or interrupted first send).
    relayed: bool = False


OnCreate = Callable[[OutgoingMessage], None]


class MessageFactory:
    """Builds every message a bus sends: checks its kind, encodes it, wraps it in an envelope.

    Args:
        lifecycle: The bus's state (nothing is built before start or after stop).
        clock: The envelope's timestamp comes from it.
        max_size: Largest encoded body, in bytes.
        on_create: Middleware ``on_create`` hooks, run on every message built.
    """

    __slots__ = ("_clock", "_lifecycle", "_max_size", "_on_create", "_service")

    def __init__(
        self,
        lifecycle: Lifecycle,
        clock: Clock,
        max_size: int,
        on_create: Sequence[OnCreate] = (),
    ) -> None:
        self._lifecycle = lifecycle
        self._service = lifecycle.service
        self._clock = clock
        self._max_size = max_size
        self._on_create = tuple(on_create)

    def set_hooks(self, on_create: Sequence[OnCreate]) -> None:
        """Replace the creation hooks (the bus sets them when it starts)."""
        self._on_create = tuple(on_create)

    def create(
        self,
        message: Message,
        kind: MessageKind,
        parent: Envelope | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> OutgoingMessage:
        """Check ``message`` is of ``kind``, encode it and wrap it in a new envelope that
        inherits from ``parent`` (the message being handled, if any): its correlation and
        conversation ids, and its id as the causation id."""
        # Every send pays for this check, so the common case is one attribute read.
        if getattr(type(message), "__message_kind__", None) is not kind:
            raise TypeError(_wrong_method(message, kind, kind_of(type(message))))
        lifecycle = self._lifecycle
        if lifecycle.state is not RUNNING:  # the hot case in one identity test
            lifecycle.check_open()
        body = encode(message)
        if len(body) > self._max_size:
            raise MessageTooLargeError(
                f"{type(message).__name__} encodes to {len(body)} bytes, over max_message_size "
                f"of {self._max_size}"
            )
        message_id = new_message_id()
        if parent is None:
            correlation = correlation_id or message_id
            conversation = message_id
            causation = None
        else:
            correlation = correlation_id or parent.correlation_id
            conversation = parent.conversation_id
            causation = parent.message_id
        name = type(message).__wire_name__
        # Positional: measurably cheaper than keywords on a path every message takes.
        envelope = Envelope(
            message_id,
            name,
            body,
            correlation,
            conversation,
            causation,
            idempotency_key,
            1,
            self._clock.now(),
            self._service,
            CONTENT_TYPE_JSON,
            dict(headers) if headers else {},
        )
        out = OutgoingMessage(kind, name, message, envelope)
        if self._on_create:
            for hook in self._on_create:
                hook(out)
        return out


def _wrong_method(message: Any, wanted: MessageKind, actual: MessageKind | None) -> str:
    name = type(message).__name__
    if actual is MessageKind.EVENT:
        return f"{name} is an event: publish it with publish(), not send()"
    if actual is MessageKind.COMMAND:
        return f"{name} is a command: send it with send(), not publish()"
    method = "send" if wanted is MessageKind.COMMAND else "publish"
    return f"{method}() takes a {wanted.value} (a busline Command/Event instance), got {name}"
