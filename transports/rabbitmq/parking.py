"""Parking a delivery the transport cannot hand to the bus: its properties did not decode.

The AMQP client decodes such a content header leniently (undecodable bytes replaced) instead of
dropping the connection, and flags the delivery with the reason. The bus never sees it: it is
copied to the error queue with the usual error headers (reason ``undecodable``, the queue, the
service, what did not decode) and acked once the copy is confirmed, like any poison message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from busline.envelope import (
    HEADER_ERROR_ATTEMPTS,
    HEADER_ERROR_FAILED_AT,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_QUEUE,
    HEADER_ERROR_REASON,
    HEADER_ERROR_SERVICE,
    HEADER_ERROR_TYPE,
)
from busline.errors import FailureReason

from .delivery import RabbitMQDelivery
from .tasks import BackgroundTasks

log = logging.getLogger("busline.rabbitmq")

#: Park ``delivery`` with ``why`` (returns at once; the work runs in the background).
Park = Callable[[RabbitMQDelivery, str], None]

#: The error type written for these messages (there is no exception object to name).
ERROR_TYPE = "busline.transports.rabbitmq.amqp.UndecodableProperties"


class Parker:
    """Parks undecodable deliveries of one transport."""

    def __init__(self, service: str, background: BackgroundTasks) -> None:
        self._service = service
        self._background = background

    def __call__(self, delivery: RabbitMQDelivery, why: str) -> None:
        """Copy ``delivery`` to the error queue with ``why``, then ack it (in the background;
        if the copy fails the message is requeued, as with any dead-lettering)."""
        log.warning(
            "%s: message %s moved to the error queue (undecodable): %s",
            delivery.queue,
            delivery.envelope.message_id,
            why,
        )
        headers = {
            HEADER_ERROR_REASON: FailureReason.UNDECODABLE.value,
            HEADER_ERROR_QUEUE: delivery.queue,
            HEADER_ERROR_SERVICE: self._service,
            HEADER_ERROR_FAILED_AT: datetime.fromtimestamp(time.time(), UTC).isoformat(),
            HEADER_ERROR_ATTEMPTS: delivery.envelope.attempt,
            HEADER_ERROR_TYPE: ERROR_TYPE,
            HEADER_ERROR_MESSAGE: why[:2000],
        }
        self._background.spawn(
            delivery.dead_letter(headers), f"busline:park:{delivery.queue}:{delivery.tag}"
        )
