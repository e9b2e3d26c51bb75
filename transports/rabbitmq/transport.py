"""The RabbitMQ transport: the composition of connection, topology, publisher and consumers."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from pamqp.commands import Basic

from busline.envelope import Envelope
from busline.transport import ConsumerSpec, DeliveryCallback, TransportSettings

from . import amqp
from .acks import CHANNEL_GONE
from .config import ConnectionConfig
from .connection import ConnectionManager
from .consumer import RabbitMQSubscription
from .delays import Delays
from .parking import Parker
from .properties import fast
from .publisher import Publisher
from .tasks import BackgroundTasks
from .topology import Topology, TopologyError
from .wire import properties_for

log = logging.getLogger("busline.rabbitmq")


class RabbitMQTransport:
    """The :class:`~busline.transport.Transport` for ``amqp://`` and ``amqps://`` URLs.

    Commands go to a durable queue named after their wire name (through the default exchange,
    mandatory, so an unroutable command raises); events to a durable fanout exchange named after
    theirs. Every publish waits for the broker's confirm. Each subscription consumes on a
    channel of its own. The connection is re-established with backoff after a loss, and
    channels, topology and consumers with it. See :class:`.connection.ConnectionConfig` for the
    ``transport_options`` it understands.
    """

    system = "rabbitmq"

    def __init__(self, url: str, settings: TransportSettings) -> None:
        self.settings = settings
        self._config = ConnectionConfig(url, settings.service, settings.options)
        self._connections = ConnectionManager(self._config, self._on_connected, self._on_lost)
        self._topology = Topology(settings.queue_type, timeout=settings.send_timeout)
        self._publisher = Publisher(self._connections, settings.send_timeout)
        self._delays = Delays(self._topology, self._publisher, settings.queue_type)
        self._subscriptions: list[RabbitMQSubscription] = []
        # E.g. closing consumer channels that were replaced: awaited on close.
        self._background = BackgroundTasks()
        self._park = Parker(settings.service, self._background)
        self._closed = False

    def __repr__(self) -> str:
        return f"<RabbitMQTransport {self._config.masked!r} {self._connections.state}>"

    @property
    def url(self) -> str:
        """The broker URL with its password masked (safe to log)."""
        return self._config.masked

    @property
    def connected(self) -> bool:
        """Whether a connection is up right now."""
        return self._connections.current is not None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and declare the error queue; keep reconnecting on loss until closed.

        Raises :class:`ConnectionError` (naming the masked URL) if the broker cannot be reached
        within ``send_timeout`` seconds, or at once if it refuses the credentials or vhost.
        """
        await self._connections.start(self.settings.send_timeout)

    async def close(self) -> None:
        """Flush acks, close consumer channels, then the connection. Unsettled deliveries go
        back to their queues (the broker requeues whatever a closed channel had unacked)."""
        if self._closed:
            return
        self._closed = True
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(sub.close() for sub in subscriptions), return_exceptions=True)
        # Channel closes are bounded by their own timeouts; the grace is a backstop.
        await self._background.close(grace=10)
        await self._publisher.close()
        await self._connections.close()

    async def _on_connected(self, connection: amqp.Connection) -> None:
        self._topology.attach(connection)
        await self._publisher.attach(connection)
        await self._topology.queue(self.settings.error_queue)
        for subscription in list(self._subscriptions):
            try:
                await subscription.attach(connection)
            except TopologyError as exc:
                # Not worth dropping the connection over: every other consumer still works.
                log.error("%s: cannot consume: %s", subscription.spec.queue, exc)

    def _on_lost(self) -> None:
        self._topology.attach(None)
        self._publisher.detach()
        for subscription in self._subscriptions:
            subscription.detach()

    # -- sending -------------------------------------------------------------------------------

    async def send(self, queue: str, envelope: Envelope) -> None:
        """Put a command on its queue (declared first, so it waits for its handler); return
        once confirmed. Raises :class:`~busline.errors.UnroutableError` if the broker returns
        it, :class:`~busline.errors.PublishError` on a nack and
        :class:`~busline.errors.PublishTimeoutError` when not confirmed within ``send_timeout``.
        """
        topology = self._topology
        await self._publisher.publish(
            exchange="",
            routing_key=queue,
            body=envelope.body,
            properties=properties_for(envelope),
            mandatory=True,
            ensure=partial(topology.queue, queue),
            # Someone deleted the queue: the next send declares it again.
            on_unroutable=partial(topology.forget, ("queue", queue)),
        )

    async def publish(self, exchange: str, envelope: Envelope) -> None:
        """Publish an event to its fanout exchange (declared if needed); return once
        confirmed. With no subscriber bound the broker drops it: nobody cared."""
        await self._publisher.publish(
            exchange=exchange,
            routing_key="",
            body=envelope.body,
            properties=properties_for(envelope),
            mandatory=False,
            ensure=partial(self._topology.exchange, exchange),
            on_not_found=partial(self._topology.forget, ("exchange", exchange)),
        )

    async def to_error_queue(self, body: bytes, properties: Basic.Properties) -> None:
        """Park a message in the error queue; return once confirmed."""
        error_queue = self.settings.error_queue
        await self._publisher.publish(
            exchange="",
            routing_key=error_queue,
            body=body,
            properties=fast(properties),
            mandatory=True,
            ensure=partial(self._topology.queue, error_queue),
            on_unroutable=partial(self._topology.forget, ("queue", error_queue)),
        )

    async def defer(
        self, queue: str, delay: float, body: bytes, properties: Basic.Properties
    ) -> None:
        """Have ``queue`` get this message again after ``delay`` seconds (see :mod:`.delays`)."""
        await self._delays.defer(queue, delay, body, properties)

    # -- consuming -----------------------------------------------------------------------------

    async def subscribe(
        self, spec: ConsumerSpec, on_delivery: DeliveryCallback
    ) -> RabbitMQSubscription:
        """Declare ``spec``'s queue and bindings and start consuming it."""
        subscription = RabbitMQSubscription(
            spec,
            on_delivery,
            self._topology,
            self,
            lambda: self._connections.current,
            self._background,
            self._park,
        )
        # Registered first: if the connection drops while attaching, the reconnect resumes it.
        self._subscriptions.append(subscription)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.send_timeout
        try:
            while True:
                try:
                    connection = await self._connections.get(deadline)
                except TimeoutError:
                    raise ConnectionError(
                        f"cannot consume {spec.queue!r}: no connection to {self._config.masked} "
                        f"within {self.settings.send_timeout:g}s"
                    ) from None
                try:
                    await subscription.attach(connection)
                    return subscription
                except TopologyError:
                    raise
                except CHANNEL_GONE as exc:
                    log.debug("%s: subscribing failed (%r); retrying", spec.queue, exc)
                    await asyncio.sleep(0.05)
        except BaseException:
            self._subscriptions.remove(subscription)
            await subscription.close()
            raise
