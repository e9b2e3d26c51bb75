"""Settling a delivery that did not simply succeed: redeliver it later, or move it to the error
queue with headers that explain why (the consumer acknowledges a handled message itself). Each
settle is guarded: if the transport cannot do it, the delivery is left unsettled and the broker
redelivers it when the channel closes."""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from typing import Any

from busline.clock import Clock
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
from busline.errors import FailureReason, qualified_name
from busline.outcomes import Outcome, OutcomeKind
from busline.retries import HEADER_DELAYED_RETRIES, HEADER_LAST_ERROR
from busline.transport import Delivery

log = logging.getLogger("busline.consumer")

#: Tracebacks in error headers are cut to this many characters (AMQP headers are not for essays).
MAX_TRACEBACK_CHARS = 8_000


class Settler:
    """Carries out outcomes on deliveries of one handler.

    Args:
        service: The consuming service (written to error headers).
        handler: The handler's name (written to error headers).
        queue: The handler's queue (for logs).
        clock: When it failed is read from it.
    """

    __slots__ = ("_clock", "_handler", "_queue", "_service")

    def __init__(self, service: str, handler: str, queue: str, clock: Clock) -> None:
        self._service = service
        self._handler = handler
        self._queue = queue
        self._clock = clock

    async def settle(self, delivery: Delivery, outcome: Outcome) -> None:
        """Defer or dead-letter ``delivery``; never raises. (The consumer acknowledges a
        handled message itself, inline: every message takes that path.)"""
        try:
            if outcome.kind is OutcomeKind.DEFERRED:
                await delivery.defer(outcome.delay, self._defer_headers(outcome))
            else:
                self._log_dead_letter(outcome)
                await delivery.dead_letter(self.error_headers(delivery, outcome))
        except Exception:
            log.exception(
                "%s: could not settle message %s (%s); left unsettled so the broker redelivers it",
                self._queue,
                delivery.envelope.message_id,
                outcome.kind.value,
            )

    def _defer_headers(self, outcome: Outcome) -> dict[str, Any]:
        error = outcome.error
        cause = error.__cause__ if isinstance(error, BaseException) else None
        log.info(
            "%s: %s %s failed on attempt %d (%r); retrying in %.1fs",
            self._queue,
            outcome.envelope.message_type,
            outcome.envelope.message_id,
            outcome.attempt,
            cause or error,
            outcome.delay,
        )
        headers: dict[str, Any] = {
            HEADER_ATTEMPT: outcome.attempt + 1,
            HEADER_DELAYED_RETRIES: outcome.round_number,
        }
        if cause is not None:
            headers[HEADER_LAST_ERROR] = f"{qualified_name(type(cause))}: {cause}"[:1000]
        return headers

    def _log_dead_letter(self, outcome: Outcome) -> None:
        error = outcome.error
        reason = outcome.reason.value if outcome.reason else "?"
        log.warning(
            "%s: %s %s moved to the error queue (%s): %s",
            self._queue,
            outcome.envelope.message_type,
            outcome.envelope.message_id,
            reason,
            str(error)[:2000] if isinstance(error, BaseException) else outcome.detail,
            exc_info=error if isinstance(error, BaseException) else None,
        )

    def error_headers(self, delivery: Delivery, outcome: Outcome) -> dict[str, Any]:
        """The headers that explain, in the error queue, why this message is there."""
        reason = outcome.reason or FailureReason.HANDLER_ERROR
        error = outcome.error
        headers: dict[str, Any] = {
            HEADER_ERROR_REASON: reason.value,
            HEADER_ERROR_QUEUE: delivery.queue,
            HEADER_ERROR_HANDLER: self._handler,
            HEADER_ERROR_SERVICE: self._service,
            HEADER_ERROR_FAILED_AT: datetime.fromtimestamp(self._clock.now(), UTC).isoformat(),
            HEADER_ERROR_ATTEMPTS: outcome.attempt,
            HEADER_ERROR_TYPE: outcome.error_type,
        }
        if isinstance(error, BaseException):
            headers[HEADER_ERROR_MESSAGE] = str(error)[:2000]
            text = "".join(traceback.format_exception(error))
            headers[HEADER_ERROR_TRACEBACK] = text[-MAX_TRACEBACK_CHARS:]
        else:
            headers[HEADER_ERROR_MESSAGE] = outcome.detail[:2000]
        return headers
