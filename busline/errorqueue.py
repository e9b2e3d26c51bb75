"""Inspecting and replaying the error queue: the messages busline parked, with their reasons.

``open_error_queue(url)`` gives the same :class:`ErrorQueue` API on every transport; the
``busline errors`` command is built on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from busline import schemes
from busline.envelope import (
    HEADER_ATTEMPT,
    HEADER_ERROR_ATTEMPTS,
    HEADER_ERROR_FAILED_AT,
    HEADER_ERROR_HANDLER,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_QUEUE,
    HEADER_ERROR_REASON,
    HEADER_ERROR_SERVICE,
    HEADER_ERROR_TRACEBACK,
    HEADER_ERROR_TYPE,
)
from busline.retries import HEADER_DELAYED_RETRIES, HEADER_LAST_ERROR

#: Headers a replay removes, so the message starts over with fresh counters.
FAILURE_HEADERS = frozenset(
    {
        HEADER_ERROR_REASON,
        HEADER_ERROR_TYPE,
        HEADER_ERROR_MESSAGE,
        HEADER_ERROR_TRACEBACK,
        HEADER_ERROR_QUEUE,
        HEADER_ERROR_HANDLER,
        HEADER_ERROR_SERVICE,
        HEADER_ERROR_FAILED_AT,
        HEADER_ERROR_ATTEMPTS,
        HEADER_DELAYED_RETRIES,
        HEADER_LAST_ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """A message in the error queue and why it is there."""

    message_id: str
    message_type: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)

    def _header(self, name: str) -> str:
        value = self.headers.get(name, "")
        return value.decode() if isinstance(value, bytes) else str(value)

    @property
    def original_queue(self) -> str:
        """The queue the message failed in; replay sends it back there."""
        return self._header(HEADER_ERROR_QUEUE)

    @property
    def reason(self) -> str:
        """Why it was parked (``handler-error``, ``undecodable``, ...)."""
        return self._header(HEADER_ERROR_REASON)

    @property
    def exception_type(self) -> str:
        """The type of the exception (or decode problem) that parked it."""
        return self._header(HEADER_ERROR_TYPE)

    @property
    def exception_message(self) -> str:
        """The exception's message."""
        return self._header(HEADER_ERROR_MESSAGE)

    @property
    def traceback(self) -> str:
        """The (bounded) traceback, when a handler raised."""
        return self._header(HEADER_ERROR_TRACEBACK)

    @property
    def attempts(self) -> int:
        """How many times a handler tried it."""
        try:
            return int(self._header(HEADER_ERROR_ATTEMPTS) or 0)
        except ValueError:
            return 0

    @property
    def failed_at(self) -> str:
        """When it was parked (ISO 8601, UTC)."""
        return self._header(HEADER_ERROR_FAILED_AT)

    @property
    def handler(self) -> str:
        """The handler that failed."""
        return self._header(HEADER_ERROR_HANDLER)

    @property
    def service(self) -> str:
        """The service that failed it."""
        return self._header(HEADER_ERROR_SERVICE)

    def matches(
        self,
        queue: str | None = None,
        message_type: str | None = None,
        exception: str | None = None,
    ) -> bool:
        """Whether it passes the given filters (``None`` means any); ``exception`` matches the
        exception type's full or short name."""
        if queue is not None and self.original_queue != queue:
            return False
        if message_type is not None and self.message_type != message_type:
            return False
        if exception is not None:
            full = self.exception_type
            if exception not in (full, full.rpartition(".")[2]):
                return False
        return True


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers a replayed message carries: failure details gone, attempts back to 1."""
    cleaned = {k: v for k, v in headers.items() if k not in FAILURE_HEADERS}
    cleaned[HEADER_ATTEMPT] = 1
    return cleaned


class ErrorQueue(Protocol):
    """The error queue of one broker."""

    async def browse(self, limit: int | None = None) -> list[ParkedMessage]:
        """The parked messages, oldest first, left in place."""

    async def replay(self, message_ids: Iterable[str] | None = None) -> list[str]:
        """Send the given (or, with ``None``, all) messages back to their original queues, each
        confirmed before its error copy is removed; return the ids replayed."""

    async def purge(self) -> int:
        """Delete every parked message; return how many."""

    async def close(self) -> None:
        """Release connections."""


async def open_error_queue(url: str, error_queue: str = "busline.error") -> ErrorQueue:
    """Connect to the error queue of the broker at ``url``.

    Any scheme registered in :mod:`busline.schemes` with an ``error_queue`` admin works here
    (and so with ``busline errors``); others raise ``ValueError`` listing those that do.
    """
    admin = schemes.resolve(url, "error_queue")
    queue: ErrorQueue = await admin.open(url, error_queue)
    return queue


def select(messages: Sequence[ParkedMessage], message_ids: Iterable[str] | None) -> set[str]:
    """The ids among ``messages`` that ``message_ids`` selects (all of them for ``None``)."""
    present = {m.message_id for m in messages}
    if message_ids is None:
        return present
    wanted = set(message_ids)
    missing = wanted - present
    if missing:
        raise KeyError(f"not in the error queue: {', '.join(sorted(missing))}")
    return wanted
