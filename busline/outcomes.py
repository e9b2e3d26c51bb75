"""What became of a delivery: the one way retries, delayed retries and the error queue are
reported to middleware (``Middleware.on_outcome``).

Outcomes are reported by whoever decides them: the retry middleware for an immediate retry (while
the attempt's middleware scope is still open), the consumer for a delayed retry or a move to the
error queue (before it settles the delivery). A message that never reached the middleware (it
could not be decoded) is reported too, with ``message`` set to ``None``. Observers run synchronously
and are guarded: an observer that raises is logged and never keeps a delivery from being settled.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from busline.errors import FailureReason, qualified_name

if TYPE_CHECKING:
    from busline.envelope import Envelope
    from busline.messages import Message
    from busline.registry import HandlerSpec

log = logging.getLogger("busline.outcomes")


class OutcomeKind(enum.StrEnum):
    """The kinds of outcome."""

    #: An attempt failed and is made again at once, in process.
    RETRY = "retry"
    #: The delivery goes back to its queue after a delay (a delayed retry, held by the broker).
    DEFERRED = "deferred"
    #: The delivery goes to the error queue with its reason.
    DEAD_LETTERED = "dead-lettered"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One reported outcome."""

    kind: OutcomeKind
    handler: HandlerSpec
    envelope: Envelope
    #: The attempt that failed (counting from 1 across immediate and delayed retries).
    attempt: int
    #: The failure: an exception, or a short type name for input that could not be read.
    error: BaseException | str
    #: Why the message goes to the error queue (``DEAD_LETTERED`` only).
    reason: FailureReason | None = None
    #: Seconds until the next attempt (``RETRY``: 0; ``DEFERRED``: the delay).
    delay: float = 0.0
    #: Which delayed round this is (``DEFERRED`` only).
    round_number: int | None = None
    #: What was wrong, when ``error`` is a type name rather than an exception.
    detail: str = ""
    #: The decoded message, ``None`` when it never reached the middleware (too large, of an
    #: unknown type, or undecodable).
    message: Message | None = None

    @property
    def error_type(self) -> str:
        """The failure's type name, as written to error headers and spans."""
        error = self.error
        return error if isinstance(error, str) else qualified_name(type(error))


Observer = Callable[[Outcome], None]


class Outcomes:
    """Fans an outcome out to every observer, guarded."""

    __slots__ = ("_observers",)

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self._observers = tuple(observers)

    def __bool__(self) -> bool:
        return bool(self._observers)

    def report(self, outcome: Outcome) -> None:
        """Tell every observer; one that raises is logged, the others still hear it."""
        for observer in self._observers:
            try:
                observer(outcome)
            except Exception:
                log.exception(
                    "an outcome observer failed on %s %s (%s); ignored",
                    outcome.envelope.message_type,
                    outcome.envelope.message_id,
                    outcome.kind.value,
                )


#: Nobody listens (the common case without tracing): reporting costs one truth test.
NO_OBSERVERS = Outcomes()
