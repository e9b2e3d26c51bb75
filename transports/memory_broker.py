"""The in-process broker itself: queues, fanout exchanges, and the process's registry of brokers.

Consumers, deliveries and the transport that uses a broker are in :mod:`.memory`; knowing when a
broker is quiet (for :func:`busline.testing.join`) is in :mod:`.memory_quiet`.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol
from urllib.parse import urlsplit

from busline.envelope import Envelope

from .memory_quiet import Quiescence


class QueueConsumer(Protocol):
    """What a queue needs of a consumer (the transport's ``MemoryConsumer``)."""

    def has_room(self) -> bool:
        """Whether its prefetch window takes another message."""

    def deliver(self, envelope: Envelope, redelivered: bool) -> None:
        """Hand it a message."""


class MemoryQueue:
    """A queue: ready messages, competing consumers, and how many deliveries await settlement."""

    def __init__(self, name: str, quiet: Quiescence) -> None:
        self.name = name
        self.ready: deque[tuple[Envelope, bool]] = deque()
        self.consumers: list[QueueConsumer] = []
        #: Deliveries from this queue not yet settled, counting those of cancelled consumers
        #: (which leave :attr:`consumers` but may still settle what they hold).
        self.unsettled = 0
        #: The broker's quiescence watch, told when this queue may have gone quiet.
        self.quiet = quiet
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
        self.quiet.changed()
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
        #: Wakes :func:`busline.testing.join` once nothing is in flight.
        self.quiet = Quiescence(self.queues)

    def holds_messages(self) -> bool:
        """Whether any message is ready, delivered but unsettled, or waiting out a delay."""
        if self.delayed:
            return True
        return any(queue.ready or queue.unsettled for queue in self.queues.values())

    def queue(self, name: str) -> MemoryQueue:
        """Declare (idempotently) and return a queue."""
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = MemoryQueue(name, self.quiet)
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


def broker_name(url: str) -> str:
    """The broker name of a ``memory://[name]`` URL (``""`` for plain ``memory://``)."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path).strip("/")


def broker_for(url: str) -> MemoryBroker:
    """Return the process-wide broker of a ``memory://[name]`` URL (created if needed).

    This only looks the broker up, for inspection; users that send or consume go through
    :func:`open_broker` and :func:`release_broker`, which decide how long it lives.
    """
    name = broker_name(url)
    broker = _brokers.get(name)
    if broker is None:
        broker = _brokers[name] = MemoryBroker(name)
    return broker


def find_broker(url: str) -> MemoryBroker | None:
    """The broker of ``url`` if it exists, without creating it."""
    return _brokers.get(broker_name(url))


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
