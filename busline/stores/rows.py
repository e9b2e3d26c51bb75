"""Turning an outgoing message into outbox column values and a stored row back into an envelope.

The row keeps the whole envelope as it was when the handler called ``send``/``publish``: ids,
type, body and every header (trace context included), so the relay can send it unchanged after
a restart. Headers are stored as JSON; ``bytes`` header values come back as base64 text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from busline.envelope import Envelope
from busline.messages import MessageKind
from busline.stores.base import OutboxRow

_headers_encoder = msgspec.json.Encoder()
_headers_decoder = msgspec.json.Decoder(dict[str, Any])


def transaction_values(
    tx_id: str, source: str, messages: int, now: float, available_at: float
) -> tuple[Any, ...]:
    """The values of an outbox transaction, in
    :data:`~busline.stores.schema.TRANSACTION_COLUMNS` order."""
    return (tx_id, source, messages, now, available_at)


def outbox_values(
    tx_id: str,
    position: int,
    kind: MessageKind,
    destination: str,
    envelope: Envelope,
    now: float,
) -> tuple[Any, ...]:
    """The values of one outbox row, in :data:`~busline.stores.schema.OUTBOX_COLUMNS` order."""
    return (
        tx_id,
        position,
        kind.value,
        destination,
        envelope.message_id,
        envelope.message_type,
        envelope.correlation_id,
        envelope.conversation_id,
        envelope.causation_id,
        envelope.idempotency_key,
        envelope.attempt,
        envelope.timestamp,
        envelope.source,
        envelope.content_type,
        _headers_encoder.encode(envelope.headers).decode(),
        bytes(envelope.body),
        now,
    )


def row_from_record(record: Sequence[Any]) -> OutboxRow:
    """Rebuild a row read with :data:`~busline.stores.sql.SELECT_UNSENT_OF` (its columns, then
    its transaction's failure count)."""
    (
        row_id,
        tx_id,
        position,
        kind,
        destination,
        message_id,
        message_type,
        correlation_id,
        conversation_id,
        causation_id,
        idempotency_key,
        attempt,
        sent_at,
        source,
        content_type,
        headers,
        body,
        _created_at,
        attempts,
    ) = record
    envelope = Envelope(
        message_id=message_id,
        message_type=message_type,
        body=bytes(body),
        correlation_id=correlation_id,
        conversation_id=conversation_id,
        causation_id=causation_id,
        idempotency_key=idempotency_key,
        attempt=attempt,
        timestamp=sent_at,
        source=source,
        content_type=content_type,
        headers=_headers_decoder.decode(headers),
    )
    return OutboxRow(
        id=row_id,
        tx_id=tx_id,
        position=position,
        kind=MessageKind(kind),
        destination=destination,
        envelope=envelope,
        attempts=attempts,
    )


def in_dispatch_order(rows: list[OutboxRow]) -> list[OutboxRow]:
    """Transactions oldest first (by their first row), each transaction's rows by position."""
    first: dict[str, int] = {}
    for row in rows:
        first[row.tx_id] = min(first.get(row.tx_id, row.id), row.id)
    return sorted(rows, key=lambda row: (first[row.tx_id], row.position))
