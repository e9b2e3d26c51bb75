"""The in-process transport: a real broker living in this process, not a mock.

It keeps RabbitMQ's semantics where busline relies on them: a queue per command type that holds
messages until a consumer comes; a fanout exchange per event type copying each event into every
bound queue; round-robin among competing consumers; prefetch; unacknowledged deliveries returned
(marked redelivered) when their consumer goes away; an error queue; delayed redelivery driven by
the bus's clock. Buses in one process that use the same URL share one broker, so several services
can talk to each other in one process: ``memory://`` is one broker, ``memory://shop`` another.

The broker and its queues are in :mod:`.memory_broker`; knowing when one is quiet, for
:func:`busline.testing.join`, in :mod:`.memory_quiet`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from busline.envelope import Envelope
from busline.transport import ConsumerSpec, DeliveryCallback, TransportSettings

from .memory_broker import (
    MemoryBroker,
    MemoryQueue,
    broker_for,
    brokers,
    find_broker,
    open_broker,
    release_broker,
)
from .memory_quiet import Quiescence

__all__ = [
    "SYSTEM",
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryDelivery",
    "MemoryQueue",
    "MemoryTransport",
    "broker_for",
    "brokers",
    "find_broker",
    "open_broker",
    "quiescence",
    "release_broker",
]

SYSTEM = "busline-memory"


def quiescence(url: str) -> Quiescence | None:
    """What tells when the broker of ``url`` is quiet, ``None`` if there is no such broker (so
    it holds nothing). Used by :func:`busline.testing.join`."""
    broker = find_broker(url)
    return None if broker is None else broker.quiet


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
        # _settle() written out: every message takes this path.
        if self._settled:
            raise RuntimeError(f"message {self.envelope.message_id} was already settled")
        self._settled = True
        self._consumer.settled(self)

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
            queue = self._consumer.queue
            # Counted as ready before it stops counting as unsettled, so it is never out of sight.
            queue.put(self.envelope, redelivered=True)
            queue.unsettled -= 1


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
        self.queue.unsettled += 1
        self._on_delivery(delivery)

    def settled(self, delivery: MemoryDelivery) -> None:
        """A delivery was settled: free its prefetch slot, and tell :func:`join` waiters.

        Whatever the handler sent is already on its queue (busline settles last), so the broker
        can only look quiet here if the work this delivery caused is done too.
        """
        self.unacked.discard(delivery)
        queue = self.queue
        queue.unsettled -= 1
        if self.active:
            queue.pump()
        quiet = queue.quiet
        if quiet.waiters:  # a test waits in join(): only then can it be worth a look
            quiet.changed()

    async def cancel(self) -> None:
        """Stop receiving new messages (those already delivered can still be settled)."""
        if self.active:
            self.active = False
            self.queue.consumers.remove(self)
            # Its queue's ready messages may now have no consumer: they no longer count.
            self.queue.quiet.changed()

    def close(self) -> None:
        """Give every unsettled delivery back to the queue, marked redelivered."""
        if self.active:
            self.active = False
            self.queue.consumers.remove(self)
        for delivery in list(self.unacked):
            delivery.release()
        self.unacked.clear()
        self.queue.quiet.changed()


class MemoryTransport:
    """The :class:`~busline.transport.Transport` for ``memory://`` URLs."""

    system = SYSTEM

    @property
    def connected(self) -> bool:
        """Always, while open: the broker is in this process."""
        return not self._released

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
