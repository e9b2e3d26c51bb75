"""The in-process transport: a real broker living in this process, not a mock.

It keeps RabbitMQ's semantics where busline relies on them: a queue per command type that holds
messages until a consumer comes; a fanout exchange per event type copying each event into every
bound queue; round-robin among competing consumers; prefetch; unacknowledged deliveries returned
(marked redelivered) when their consumer goes away; an error queue; delayed redelivery driven by
the bus's clock. Buses in one process that use the same URL share one broker, so several services
can talk to each other in one process: ``memory://`` is one broker, ``memory://shop`` another.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from busline.envelope import Envelope
from busline.transport import ConsumerSpec, DeliveryCallback, TransportSettings

SYSTEM = "busline-memory"


class MemoryQueue:
    """A queue: ready messages, competing consumers, unacknowledged deliveries."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready: deque[tuple[Envelope, bool]] = deque()
        self.consumers: list[MemoryConsumer] = []
        self._next_consumer = 0

    def __len__(self) -> int:
        return len(self.ready)

    def put(self, envelope: Envelope, redelivered: bool = False) -> None:
        """Enqueue a message and hand it out if a consumer has room."""
        self.ready.append((envelope, redelivered))
        self.pump()

    def pump(self) -> None:
        """Deliver ready messages to consumers with room, round-robin."""
        consumers = self.consumers
        ready = self.ready
        if len(consumers) == 1:  # the common case, without the round-robin bookkeeping
            only = consumers[0]
            while ready and only.has_room():
                envelope, redelivered = ready.popleft()
                only.deliver(envelope, redelivered)
            return
        while ready and consumers:
            count = len(consumers)
            for offset in range(count):
                consumer = consumers[(self._next_consumer + offset) % count]
                if consumer.has_room():
                    self._next_consumer = (self._next_consumer + offset + 1) % count
                    envelope, redelivered = ready.popleft()
                    consumer.deliver(envelope, redelivered)
                    break
            else:
                return

    def drain(self) -> list[Envelope]:
        """Remove and return every ready message (for inspection in tests and tools)."""
        messages = [envelope for envelope, _ in self.ready]
        self.ready.clear()
        return messages


class MemoryBroker:
    """Queues and fanout exchanges shared by every transport opened with the same URL."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.queues: dict[str, MemoryQueue] = {}
        self.exchanges: dict[str, set[str]] = {}
        #: Open transports and error-queue admins on this broker (see :func:`open_broker`).
        self.users = 0
        #: Messages deferred on the clock, to be put back on their queues when it fires.
        self.delayed = 0

    def holds_messages(self) -> bool:
        """Whether any message is ready, delivered but unsettled, or waiting out a delay."""
        if self.delayed:
            return True
        return any(
            queue.ready or any(consumer.unacked for consumer in queue.consumers)
            for queue in self.queues.values()
        )

    def queue(self, name: str) -> MemoryQueue:
        """Declare (idempotently) and return a queue."""
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = MemoryQueue(name)
        return queue

    def bind(self, exchange: str, queue: str) -> None:
        """Bind ``queue`` to the fanout ``exchange``, declaring both."""
        self.queue(queue)
        self.exchanges.setdefault(exchange, set()).add(queue)

    def publish(self, exchange: str, envelope: Envelope) -> None:
        """Copy an event into every queue bound to its exchange (none bound: it is dropped,
        as RabbitMQ drops an unroutable event: nobody cared)."""
        for queue_name in self.exchanges.get(exchange, ()):
            self.queues[queue_name].put(envelope.copy())


#: The process's brokers by name. A broker lives while a transport or error-queue admin uses
#: it or it holds messages (see :func:`release_broker`), so fresh test URLs do not pile up.
_brokers: dict[str, MemoryBroker] = {}


def broker_for(url: str) -> MemoryBroker:
    """Return the process-wide broker of a ``memory://[name]`` URL (created if needed).

    This only looks the broker up, for inspection; users that send or consume go through
    :func:`open_broker` and :func:`release_broker`, which decide how long it lives.
    """
    parts = urlsplit(url)
    name = (parts.netloc + parts.path).strip("/")
    broker = _brokers.get(name)
    if broker is None:
        broker = _brokers[name] = MemoryBroker(name)
    return broker


def open_broker(url: str) -> MemoryBroker:
    """Return the broker of ``url`` and count one more user of it."""
    broker = broker_for(url)
    broker.users += 1
    return broker


def release_broker(broker: MemoryBroker) -> None:
    """Count one user fewer; drop the broker once unused and empty.

    An unused broker that still holds messages stays, as a RabbitMQ node keeps its queues: a
    command sent before its handler's service starts waits for it, and parked messages wait
    for ``busline errors``.
    """
    broker.users = max(broker.users - 1, 0)
    if broker.users == 0 and not broker.holds_messages() and _brokers.get(broker.name) is broker:
        del _brokers[broker.name]


def brokers() -> dict[str, MemoryBroker]:
    """A snapshot of the process's brokers by name (for tests and tools)."""
    return dict(_brokers)


class MemoryDelivery:
    """One delivered message; settled once through ack, dead_letter or defer."""

    __slots__ = ("_consumer", "_settled", "envelope", "redelivered")

    def __init__(self, consumer: MemoryConsumer, envelope: Envelope, redelivered: bool) -> None:
        self._consumer = consumer
        self.envelope = envelope
        self.redelivered = redelivered
        self._settled = False

    @property
    def queue(self) -> str:
        """The queue this message was read from."""
        return self._consumer.queue.name

    def _settle(self) -> None:
        if self._settled:
            raise RuntimeError(f"message {self.envelope.message_id} was already settled")
        self._settled = True
        self._consumer.settled(self)

    async def ack(self) -> None:
        """Remove the message: it was processed."""
        self._settle()

    async def dead_letter(self, headers: Mapping[str, Any]) -> None:
        """Move the message, with ``headers`` added, to the error queue."""
        parked = self.envelope.with_headers(headers)
        self._consumer.transport.broker.queue(self._consumer.transport.error_queue).put(parked)
        self._settle()

    async def defer(self, delay: float, headers: Mapping[str, Any]) -> None:
        """Put the message back on its queue after ``delay`` seconds of the bus's clock."""
        again = self.envelope.with_headers(headers)
        queue = self._consumer.queue
        broker = self._consumer.transport.broker
        # Counted so the broker outlives its last user while the message waits out its delay.
        broker.delayed += 1

        def redeliver() -> None:
            broker.delayed -= 1
            queue.put(again)

        self._consumer.transport.clock.call_later(delay, redeliver)
        self._settle()

    def release(self) -> None:
        """Return the message to its queue unprocessed (its consumer went away)."""
        if not self._settled:
            self._settled = True
            self._consumer.queue.put(self.envelope, redelivered=True)


class MemoryConsumer:
    """A subscription: receives up to ``prefetch`` unacknowledged messages at a time."""

    def __init__(
        self,
        transport: MemoryTransport,
        queue: MemoryQueue,
        prefetch: int,
        on_delivery: DeliveryCallback,
    ) -> None:
        self.transport = transport
        self.queue = queue
        self.prefetch = prefetch
        self._on_delivery = on_delivery
        self.unacked: set[MemoryDelivery] = set()
        self.active = True

    def has_room(self) -> bool:
        """Whether the prefetch window has space."""
        return self.active and len(self.unacked) < self.prefetch

    def deliver(self, envelope: Envelope, redelivered: bool) -> None:
        """Hand one message to the dispatcher."""
        delivery = MemoryDelivery(self, envelope, redelivered)
        self.unacked.add(delivery)
        self._on_delivery(delivery)

    def settled(self, delivery: MemoryDelivery) -> None:
        """A delivery was settled: free its prefetch slot."""
        self.unacked.discard(delivery)
        if self.active:
            self.queue.pump()

    async def cancel(self) -> None:
        """Stop receiving new messages (those already delivered can still be settled)."""
        if self.active:
            self.active = False
            self.queue.consumers.remove(self)

    def close(self) -> None:
        """Give every unsettled delivery back to the queue, marked redelivered."""
        if self.active:
            self.active = False
            self.queue.consumers.remove(self)
        for delivery in list(self.unacked):
            delivery.release()
        self.unacked.clear()


class MemoryTransport:
    """The :class:`~busline.transport.Transport` for ``memory://`` URLs."""

    system = SYSTEM

    def __init__(self, url: str, settings: TransportSettings) -> None:
        self.url = url
        self.broker = open_broker(url)
        self.error_queue = settings.error_queue
        self.clock = settings.clock
        self._consumers: list[MemoryConsumer] = []
        self._released = False
        self.broker.queue(self.error_queue)

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.url!r}>"

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Stop consumers; unsettled deliveries go back to their queues. Then let go of the
        broker (once, however often this is called)."""
        for consumer in self._consumers:
            consumer.close()
        self._consumers.clear()
        if not self._released:
            self._released = True
            release_broker(self.broker)

    async def send(self, queue: str, envelope: Envelope) -> None:
        """Put a command on its queue (declared if needed, so it waits for its handler)."""
        # No copy: the bus built this envelope for this one send and keeps no reference to it.
        self.broker.queue(queue).put(envelope)

    async def publish(self, exchange: str, envelope: Envelope) -> None:
        """Copy an event into every subscriber queue bound to its exchange."""
        self.broker.publish(exchange, envelope)

    async def subscribe(self, spec: ConsumerSpec, on_delivery: DeliveryCallback) -> MemoryConsumer:
        """Declare the queue and its bindings, then start delivering to ``on_delivery``."""
        queue = self.broker.queue(spec.queue)
        for exchange in spec.bindings:
            self.broker.bind(exchange, spec.queue)
        consumer = MemoryConsumer(self, queue, spec.prefetch, on_delivery)
        self._consumers.append(consumer)
        queue.consumers.append(consumer)
        queue.pump()
        return consumer
