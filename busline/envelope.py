"""The transport-neutral envelope of a message and the names of busline's wire headers.

docs/wire-format.md is the contract; the constants here are its single source in code.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONTENT_TYPE_JSON = "application/json"

HEADER_CAUSATION_ID = "busline-causation-id"
HEADER_CONVERSATION_ID = "busline-conversation-id"
HEADER_IDEMPOTENCY_KEY = "busline-idempotency-key"
HEADER_ATTEMPT = "busline-attempt"
#: How a message wants its process span related to its send (``child``/``link``), over the
#: handler's setting: a saga's timeout asks for ``link`` (a new trace when it fires).
HEADER_TRACE_AS = "busline-trace-as"

HEADER_ERROR_REASON = "busline-error-reason"
HEADER_ERROR_TYPE = "busline-error-type"
HEADER_ERROR_MESSAGE = "busline-error-message"
HEADER_ERROR_TRACEBACK = "busline-error-traceback"
HEADER_ERROR_QUEUE = "busline-original-queue"
HEADER_ERROR_HANDLER = "busline-handler"
HEADER_ERROR_SERVICE = "busline-service"
HEADER_ERROR_FAILED_AT = "busline-failed-at"
HEADER_ERROR_ATTEMPTS = "busline-attempts"

#: Headers busline itself maps to :class:`Envelope` fields; everything else stays in ``headers``.
ENVELOPE_HEADERS = frozenset(
    {HEADER_CAUSATION_ID, HEADER_CONVERSATION_ID, HEADER_IDEMPOTENCY_KEY, HEADER_ATTEMPT}
)


class _MessageIds:
    """32-hex-digit ids: 64 random bits per process, then a counter.

    As unique as a UUID4 across processes (the random part is re-drawn in a forked child) and
    several times cheaper, which matters because every message needs one.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        """Draw a new random prefix and counter start (at start, and in a forked child)."""
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(secrets.randbits(48))

    def next(self) -> str:
        """The next id."""
        return f"{self._prefix}{next(self._counter):016x}"


_ids = _MessageIds()


def new_message_id() -> str:
    """Return a fresh, globally unique message id (32 hex digits)."""
    return _ids.next()


@dataclass(slots=True)
class Envelope:
    """One message as it travels: the encoded body plus the metadata of docs/wire-format.md."""

    message_id: str
    message_type: str
    body: bytes
    correlation_id: str
    conversation_id: str
    causation_id: str | None = None
    idempotency_key: str | None = None
    attempt: int = 1
    timestamp: float = field(default_factory=time.time)
    source: str = ""
    content_type: str = CONTENT_TYPE_JSON
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_idempotency_key(self) -> str:
        """The key a consumer deduplicates on: the explicit key, else the message id."""
        return self.idempotency_key or self.message_id

    def copy(self) -> Envelope:
        """Return a copy whose headers can be changed without touching this one."""
        return Envelope(
            self.message_id,
            self.message_type,
            self.body,
            self.correlation_id,
            self.conversation_id,
            self.causation_id,
            self.idempotency_key,
            self.attempt,
            self.timestamp,
            self.source,
            self.content_type,
            dict(self.headers),
        )

    def with_headers(self, headers: Mapping[str, Any]) -> Envelope:
        """A copy with ``headers`` applied as they would be on the wire: busline's envelope
        headers update the matching fields, the others are merged into ``headers``."""
        updated = self.copy()
        for name, value in headers.items():
            if name == HEADER_ATTEMPT:
                updated.attempt = int(value)
            elif name == HEADER_CAUSATION_ID:
                updated.causation_id = str(value)
            elif name == HEADER_CONVERSATION_ID:
                updated.conversation_id = str(value)
            elif name == HEADER_IDEMPOTENCY_KEY:
                updated.idempotency_key = str(value)
            else:
                updated.headers[name] = value
        return updated

    def wire_headers(self) -> dict[str, Any]:
        """The AMQP headers table for this envelope: busline's fields plus any extra headers."""
        headers: dict[str, Any] = dict(self.headers)
        headers[HEADER_CONVERSATION_ID] = self.conversation_id
        headers[HEADER_ATTEMPT] = self.attempt
        if self.causation_id is not None:
            headers[HEADER_CAUSATION_ID] = self.causation_id
        if self.idempotency_key is not None:
            headers[HEADER_IDEMPOTENCY_KEY] = self.idempotency_key
        return headers
