"""A subscription: one channel, prefetch, a consumer on one queue, resumed after reconnects.

Each subscription gets a channel of its own, so its prefetch window and its delivery tags are its
own, and a problem on one queue never stalls another. The client hands every delivery to
:meth:`ConsumerChannel.on_message` synchronously, as its frames are read: no task per delivery,
and deliveries reach the bus in the order the broker sent them.

A delivery whose properties did not decode (e.g. a ``type`` that is not UTF-8) never reaches the
bus: it is parked in the error queue with the reason, and the messages behind it carry on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from busline.envelope import Envelope, new_message_id
from busline.transport import ConsumerSpec, DeliveryCallback

from . import amqp
from .acks import CHANNEL_GONE, AckTracker
from .delivery import DeliveryChannel, RabbitMQDelivery, Republisher
from .parking import Park
from .tasks import BackgroundTasks
from .topology import Topology, TopologyError
from .wire import envelope_from

log = logging.getLogger("busline.rabbitmq")

_CANCEL_FAILURES: tuple[type[BaseException], ...] = (TimeoutError, *CHANNEL_GONE)


class ConsumerChannel(DeliveryChannel):
    """One channel's consumer: turns AMQP deliveries into :class:`RabbitMQDelivery` objects."""

    __slots__ = ("_on_delivery", "_park", "channel")

    def __init__(
        self,
        queue: str,
        channel: amqp.Channel,
        prefetch: int,
        on_delivery: DeliveryCallback,
        republisher: Republisher,
        park: Park,
    ) -> None:
        super().__init__(queue, AckTracker(channel, prefetch, queue), republisher)
        self.channel = channel
        self._on_delivery = on_delivery
        self._park = park

    def on_message(self, message: amqp.Delivery) -> None:
        """Called by the client for every delivery on the channel, in order."""
        tag = message.delivery_tag
        self.acks.delivered(tag)
        properties = message.properties
        try:
            envelope = envelope_from(message.body, properties)
        except Exception:  # the mapping is lenient; this is a last line of defence
            log.exception("%s: unreadable properties on delivery %d", self.queue, tag)
            message_id = new_message_id()
            envelope = Envelope(message_id, "", message.body, message_id, message_id)
        delivery = RabbitMQDelivery(self, tag, envelope, properties, message.redelivered)
        if message.header_error is not None:
            self._park(delivery, message.header_error)
            return
        try:
            self._on_delivery(delivery)
        except Exception:
            log.exception("%s: delivery callback failed; message %d requeued", self.queue, tag)
            self.acks.requeue(tag)

    async def close(self) -> None:
        """Send the acks still due, then close the channel (unacked messages go back)."""
        await self.acks.flush_and_stop()
        if not self.channel.is_closed:
            try:
                await self.channel.close(grace=5)
            except Exception as exc:
                log.debug("%s: closing the consumer channel: %r", self.queue, exc)


class RabbitMQSubscription:
    """A running consumer (see :class:`busline.transport.Subscription`)."""

    def __init__(
        self,
        spec: ConsumerSpec,
        on_delivery: DeliveryCallback,
        topology: Topology,
        republisher: Republisher,
        current_connection: Callable[[], amqp.Connection | None],
        background: BackgroundTasks,
        park: Park,
    ) -> None:
        self.spec = spec
        self._on_delivery = on_delivery
        self._topology = topology
        self._republisher = republisher
        self._current_connection = current_connection
        self._background = background
        self._park = park
        self._consumer: ConsumerChannel | None = None
        self._connection: amqp.Connection | None = None
        self._lock = asyncio.Lock()
        self._recovery: asyncio.Task[None] | None = None
        self._tag = f"busline.{spec.queue}.{uuid.uuid4().hex[:12]}"
        #: False once cancelled or closed: not consuming again after a reconnect.
        self.active = True

    def __repr__(self) -> str:
        state = "consuming" if self._consumer is not None else "waiting"
        return f"<RabbitMQSubscription {self.spec.queue!r} {state if self.active else 'cancelled'}>"

    async def attach(self, connection: amqp.Connection) -> None:
        """Declare the queue and bindings and consume on a new channel of ``connection``
        (a no-op if already consuming on it)."""
        async with self._lock:
            if not self.active or (
                self._connection is connection
                and self._consumer is not None
                and not self._consumer.channel.is_closed
            ):
                return
            spec = self.spec
            await self._topology.queue(spec.queue)
            for exchange in spec.bindings:
                await self._topology.exchange(exchange)
                await self._topology.binding(spec.queue, exchange)
            channel = await connection.channel()
            consumer = ConsumerChannel(
                spec.queue,
                channel,
                spec.prefetch,
                self._on_delivery,
                self._republisher,
                self._park,
            )
            try:
                await channel.basic_qos(prefetch_count=spec.prefetch)
                consumer.acks.start()
                await channel.basic_consume(spec.queue, consumer.on_message, consumer_tag=self._tag)
            except BaseException:
                consumer.acks.kill()
                if not channel.is_closed:
                    await asyncio.gather(channel.close(), return_exceptions=True)
                raise
            self._retire()
            self._consumer, self._connection = consumer, connection
            channel.closed.add_done_callback(lambda _: self._channel_closed(consumer))
            channel.on_cancel.append(lambda _: self._broker_cancelled(consumer))
            log.debug("consuming %s (prefetch %d)", spec.queue, spec.prefetch)

    def detach(self) -> None:
        """The connection was lost: its deliveries can no longer be settled."""
        self._retire()
        self._connection = None

    async def cancel(self) -> None:
        """Stop receiving; deliveries already received can still be settled until close."""
        self.active = False
        self._stop_recovery()
        consumer = self._consumer
        if consumer is not None and not consumer.channel.is_closed:
            try:
                await asyncio.wait_for(consumer.channel.basic_cancel(self._tag), 10)
            except _CANCEL_FAILURES as exc:
                log.debug("%s: basic.cancel failed: %r", self.spec.queue, exc)

    async def close(self) -> None:
        """Cancel, flush pending acks and close the channel."""
        self.active = False
        self._stop_recovery()
        consumer, self._consumer = self._consumer, None
        self._connection = None
        if consumer is not None:
            await consumer.close()

    def _retire(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.acks.kill()
            if not consumer.channel.is_closed:
                # Its unsettled deliveries go back to the queue when the channel closes.
                self._background.spawn(consumer.close(), f"busline:retire:{self.spec.queue}")

    def _channel_closed(self, consumer: ConsumerChannel) -> None:
        consumer.acks.kill()
        if self._consumer is not consumer:
            return  # closed or replaced on purpose
        self._consumer = None
        connection = self._connection
        if self.active and connection is not None and not connection.is_closed:
            # A channel error on a live connection (a lost connection is handled by the
            # reconnect, which resumes every subscription).
            self._recover("its channel closed")

    def _broker_cancelled(self, consumer: ConsumerChannel) -> Any:
        if self._consumer is consumer and self.active:
            # E.g. the queue was deleted: declare it again and consume on a fresh channel.
            self._topology.forget(("queue", self.spec.queue))
            self._retire()
            self._recover("the broker cancelled the consumer")

    def _recover(self, why: str) -> None:
        if self._recovery is None or self._recovery.done():
            log.warning("%s: %s; consuming again", self.spec.queue, why)
            self._recovery = asyncio.ensure_future(self._reattach())

    def _stop_recovery(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            self._recovery = None

    async def _reattach(self) -> None:
        delay = 0.25
        while self.active:
            connection = self._current_connection()
            if connection is None:
                return  # the connection is down: the reconnect resumes this subscription
            try:
                await self.attach(connection)
                return
            except TopologyError as exc:
                log.error("%s: cannot consume: %s", self.spec.queue, exc)
            except CHANNEL_GONE as exc:
                log.debug("%s: re-consuming failed: %r", self.spec.queue, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
