"""One received message and the three ways to settle it: ack, dead-letter, defer.

A delivery belongs to the channel it arrived on; delivery tags mean nothing on any other channel.
Once that channel is gone (connection lost, transport closed) the broker has already put the
message back in its queue, so settling it is a logged no-op rather than an error: the message
will be delivered again and nothing is lost. Moving a message elsewhere (error queue, delay
level) always waits for the broker's confirm of the copy before the original is acked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from pamqp.commands import Basic

from busline.envelope import Envelope

from .acks import AckTracker
from .wire import republish_properties

log = logging.getLogger("busline.rabbitmq")


class Republisher(Protocol):
    """Where settled-elsewhere messages go (implemented by the transport)."""

    async def to_error_queue(self, body: bytes, properties: Basic.Properties) -> None:
        """Publish to the error queue and wait for the confirm."""

    async def defer(
        self, queue: str, delay: float, body: bytes, properties: Basic.Properties
    ) -> None:
        """Publish to the delay level that returns it to ``queue``; wait for the confirm."""


class DeliveryChannel:
    """What deliveries of one consumer channel share: the queue, acks and the republisher."""

    __slots__ = ("acks", "queue", "republisher")

    def __init__(self, queue: str, acks: AckTracker, republisher: Republisher) -> None:
        self.queue = queue
        self.acks = acks
        self.republisher = republisher


class RabbitMQDelivery:
    """A message received from RabbitMQ, to be settled once (see :class:`busline.transport.
    Delivery`)."""

    __slots__ = ("_channel", "_properties", "_settled", "envelope", "redelivered", "tag")

    def __init__(
        self,
        channel: DeliveryChannel,
        tag: int,
        envelope: Envelope,
        properties: Basic.Properties,
        redelivered: bool,
    ) -> None:
        self._channel = channel
        self._properties = properties
        self._settled = False
        self.tag = tag
        self.envelope = envelope
        self.redelivered = redelivered

    def __repr__(self) -> str:
        return (
            f"<RabbitMQDelivery {self.envelope.message_type or '?'} {self.envelope.message_id} "
            f"from {self.queue!r} tag={self.tag}>"
        )

    @property
    def queue(self) -> str:
        """The queue the message was read from."""
        return self._channel.queue

    async def ack(self) -> None:
        """Settle as processed (acknowledged in a batch, see :mod:`.acks`)."""
        self._claim()
        if not self._channel.acks.ack(self.tag):
            self._gone("ack")

    async def dead_letter(self, headers: Mapping[str, Any]) -> None:
        """Copy the original message, plus ``headers``, to the error queue; ack once confirmed.

        If the copy fails, the message is given back to the broker (requeued) and the error is
        raised: it is redelivered, never dropped.
        """
        self._claim()
        if not self._channel.acks.alive:
            self._gone("dead-letter")
            return
        properties = republish_properties(self._properties, self.envelope.message_id, headers)
        try:
            await self._channel.republisher.to_error_queue(self.envelope.body, properties)
        except BaseException:
            self._channel.acks.requeue(self.tag)
            raise
        if not self._channel.acks.ack(self.tag):
            self._gone("ack after dead-lettering")

    async def defer(self, delay: float, headers: Mapping[str, Any]) -> None:
        """Have the broker redeliver the message to its queue after ``delay`` seconds (with
        ``headers`` merged in); ack the original once the delayed copy is confirmed."""
        self._claim()
        if not self._channel.acks.alive:
            self._gone("defer")
            return
        properties = republish_properties(self._properties, self.envelope.message_id, headers)
        try:
            await self._channel.republisher.defer(
                self._channel.queue, delay, self.envelope.body, properties
            )
        except BaseException:
            self._channel.acks.requeue(self.tag)
            raise
        if not self._channel.acks.ack(self.tag):
            self._gone("ack after deferring")

    def _claim(self) -> None:
        if self._settled:
            raise RuntimeError(f"message {self.envelope.message_id} was already settled")
        self._settled = True

    def _gone(self, action: str) -> None:
        log.debug(
            "%s: %s of message %s skipped: its channel is gone, the broker redelivers it",
            self._channel.queue,
            action,
            self.envelope.message_id,
        )
