"""Building a message's envelope: ids, inherited correlation, encoding and the size limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from busline.codec import encode
from busline.context import OutgoingMessage
from busline.envelope import CONTENT_TYPE_JSON, Envelope, new_message_id
from busline.errors import MessageTooLargeError
from busline.messages import Message, MessageKind, kind_of


def check_kind(message: Message, kind: MessageKind) -> None:
    """Raise ``TypeError`` naming the right method when ``message`` is not of ``kind``."""
    # Every send pays for this check, so the common case is one attribute read.
    if getattr(type(message), "__message_kind__", None) is not kind:
        raise TypeError(_wrong_method(message, kind, kind_of(type(message))))


def build_outgoing(
    message: Message,
    kind: MessageKind,
    parent: Envelope | None,
    correlation_id: str | None,
    idempotency_key: str | None,
    headers: Mapping[str, Any] | None,
    *,
    service: str,
    now: float,
    max_size: int,
) -> OutgoingMessage:
    """Encode ``message`` and wrap it in a new envelope that inherits from ``parent`` (the
    message being handled, if any): its correlation and conversation ids, and its id as the
    causation id."""
    body = encode(message)
    if len(body) > max_size:
        raise MessageTooLargeError(
            f"{type(message).__name__} encodes to {len(body)} bytes, over max_message_size "
            f"of {max_size}"
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
        now,
        service,
        CONTENT_TYPE_JSON,
        dict(headers) if headers else {},
    )
    return OutgoingMessage(kind, name, message, envelope)


def _wrong_method(message: Any, wanted: MessageKind, actual: MessageKind | None) -> str:
    name = type(message).__name__
    if actual is MessageKind.EVENT:
        return f"{name} is an event: publish it with publish(), not send()"
    if actual is MessageKind.COMMAND:
        return f"{name} is a command: send it with send(), not publish()"
    method = "send" if wanted is MessageKind.COMMAND else "publish"
    return f"{method}() takes a {wanted.value} (a busline Command/Event instance), got {name}"
