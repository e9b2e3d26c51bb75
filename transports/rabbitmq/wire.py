"""The wire mapping between an :class:`~busline.envelope.Envelope` and an AMQP message.

This module is the code behind docs/wire-format.md; keep them in step. Sending:

=================  ==========================================================
AMQP property      value
=================  ==========================================================
message_id         ``envelope.message_id``
correlation_id     ``envelope.correlation_id``
type               ``envelope.message_type`` (the message's wire name)
content_type       ``application/json``
timestamp          ``envelope.timestamp`` in whole seconds
app_id             ``envelope.source`` (the sending service)
delivery_mode      2 (persistent)
headers            ``envelope.wire_headers()``: ``busline-conversation-id``,
                   ``busline-attempt``, ``busline-causation-id`` and
                   ``busline-idempotency-key`` when set, plus extra headers
=================  ==========================================================

Receiving is lenient, because anything may arrive from a plain client: busline's own headers
become envelope fields, every other header stays in ``envelope.headers``; a missing message id is
generated, a missing correlation id is the message id, a missing conversation id is the
correlation id, a missing type is ``""`` (the dispatcher then parks the message as unknown-type).
Nothing here raises on odd properties.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pamqp.commands import Basic

from busline.envelope import (
    CONTENT_TYPE_JSON,
    ENVELOPE_HEADERS,
    HEADER_ATTEMPT,
    HEADER_CAUSATION_ID,
    HEADER_CONVERSATION_ID,
    HEADER_IDEMPOTENCY_KEY,
    Envelope,
    new_message_id,
)

from .properties import FastProperties

PERSISTENT = 2

# Header values AMQP field tables take as they are; anything else is converted first.
_PLAIN_TYPES = frozenset({str, int, bool, float, type(None)})
_INT64 = range(-(2**63), 2**63)


def properties_for(envelope: Envelope) -> FastProperties:
    """The AMQP properties (headers included) that carry ``envelope``."""
    return FastProperties(
        content_type=envelope.content_type or CONTENT_TYPE_JSON,
        headers=wire_table(envelope.wire_headers()),
        delivery_mode=PERSISTENT,
        correlation_id=envelope.correlation_id,
        message_id=envelope.message_id,
        timestamp=datetime.fromtimestamp(int(envelope.timestamp), UTC),
        message_type=envelope.message_type,
        app_id=envelope.source or None,
    )


def republish_properties(
    original: Basic.Properties, message_id: str, extra_headers: Mapping[str, Any]
) -> FastProperties:
    """Properties to re-publish a received message with (to the error queue or a delay queue):
    the original ones, ``extra_headers`` merged into its headers, persistent, and without the
    properties that would make the copy vanish or be refused (``expiration``, ``user_id``)."""
    headers = dict(original.headers or {})
    headers.update(extra_headers)
    return FastProperties(
        content_type=original.content_type,
        content_encoding=original.content_encoding,
        headers=wire_table(headers),
        delivery_mode=PERSISTENT,
        priority=original.priority,
        correlation_id=original.correlation_id,
        reply_to=original.reply_to,
        message_id=original.message_id or message_id,
        timestamp=original.timestamp,
        message_type=original.message_type,
        app_id=original.app_id,
    )


def envelope_from(body: bytes, properties: Basic.Properties) -> Envelope:
    """Build the envelope of a received message (never raises on odd properties)."""
    headers: dict[str, Any] = {}
    causation: str | None = None
    conversation: str | None = None
    idempotency_key: str | None = None
    attempt = 1
    raw = properties.headers
    if raw:
        for key, value in raw.items():
            if key in ENVELOPE_HEADERS:
                if key == HEADER_ATTEMPT:
                    attempt = _attempt(value)
                elif key == HEADER_CONVERSATION_ID:
                    conversation = _text(value)
                elif key == HEADER_CAUSATION_ID:
                    causation = _text(value)
                elif key == HEADER_IDEMPOTENCY_KEY:
                    idempotency_key = _text(value)
            else:
                headers[key] = _plain(value)
    message_id = _text(properties.message_id) or new_message_id()
    correlation_id = _text(properties.correlation_id) or message_id
    stamp = properties.timestamp
    return Envelope(
        message_id=message_id,
        message_type=_text(properties.message_type) or "",
        body=body,
        correlation_id=correlation_id,
        conversation_id=conversation or correlation_id,
        causation_id=causation,
        idempotency_key=idempotency_key,
        attempt=attempt,
        timestamp=stamp.timestamp() if isinstance(stamp, datetime) else time.time(),
        source=_text(properties.app_id) or "",
        content_type=_text(properties.content_type) or CONTENT_TYPE_JSON,
        headers=headers,
    )


def wire_table(headers: dict[str, Any]) -> dict[str, Any]:
    """``headers`` in a form AMQP field tables can encode (bytes become byte arrays, other
    objects text). Returns ``headers`` itself when nothing needs converting (the usual case)."""
    for value in headers.values():
        if type(value) not in _PLAIN_TYPES or (type(value) is int and value not in _INT64):
            break
    else:
        return headers
    return {str(key): _wire_value(value) for key, value in headers.items()}


def _wire_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, float, Decimal, datetime, bytearray)):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else str(value)
    if isinstance(value, (bytes, memoryview)):
        return bytearray(value)
    if isinstance(value, Mapping):
        return {str(k): _wire_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire_value(v) for v in value]
    return str(value)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _plain(value: Any) -> Any:
    """A received header value as Python code expects it: text as ``str`` where it is text."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def _attempt(value: Any) -> int:
    try:
        if isinstance(value, (int, float, Decimal)):
            attempt = int(value)
        else:
            attempt = int((_text(value) or "1").strip())
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        return 1
    return attempt if attempt >= 1 else 1
