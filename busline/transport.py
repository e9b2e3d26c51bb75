"""The contract every transport implements, and how a URL picks one.

The core never imports a transport module at import time: :func:`open_transport` imports it when
a bus starts, so ``busline`` works without aio-pika installed as long as no ``amqp://`` URL is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from busline import schemes
from busline.clock import Clock, SystemClock
from busline.envelope import Envelope

QueueType = Literal["quorum", "classic"]


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Options a bus passes to its transport."""

    service: str
    queue_type: QueueType = "quorum"
    error_queue: str = "busline.error"
    #: How long a send may wait for a connection and a confirm before it raises.
    send_timeout: float = 30.0
    clock: Clock = field(default_factory=SystemClock)
    #: Transport-specific extras (e.g. TLS context, heartbeat), from ``Bus(transport_options=)``.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """What one consumer reads: its queue, the event exchanges bound to it, its prefetch."""

    queue: str
    #: Event exchanges (wire names) to bind to ``queue``; empty for a command queue.
    bindings: tuple[str, ...] = ()
    prefetch: int = 64


class Delivery(Protocol):
    """One received message, to be settled exactly once by the dispatcher."""

    @property
    def envelope(self) -> Envelope:
        """The message as received."""

    @property
    def queue(self) -> str:
        """The queue it was read from."""

    @property
    def redelivered(self) -> bool:
        """Whether the broker delivered it before (to this or another consumer)."""

    async def ack(self) -> None:
        """Settle: processed, remove it."""

    async def dead_letter(self, headers: Mapping[str, Any]) -> None:
        """Move the original message, plus ``headers``, to the error queue, then remove it.

        Must only remove it once the error queue has it (confirmed), so a crash loses nothing.
        """

    async def defer(self, delay: float, headers: Mapping[str, Any]) -> None:
        """Redeliver it to its queue after ``delay`` seconds (with ``headers`` merged in).

        The transport holds it meanwhile (a TTL queue on RabbitMQ), never the consumer.
        """


#: Called by a transport for each message it receives; must not block.
DeliveryCallback = Callable[[Delivery], None]


class Subscription(Protocol):
    """A running consumer."""

    async def cancel(self) -> None:
        """Stop receiving new messages; messages already delivered may still be settled."""


@runtime_checkable
class Transport(Protocol):
    """A message broker connection: sends commands, publishes events, runs consumers."""

    #: The ``messaging.system`` value for tracing, e.g. ``"rabbitmq"``.
    system: str

    @property
    def connected(self) -> bool:
        """Whether a send could go to the broker right now (a connection is up). Messages
        already committed to an outbox are left to its relay when not, rather than holding the
        caller until the send timeout."""

    async def start(self) -> None:
        """Connect (and keep reconnecting on failure until closed)."""

    async def close(self) -> None:
        """Close connections. Unsettled deliveries go back to their queues."""

    async def send(self, queue: str, envelope: Envelope) -> None:
        """Put a command on its queue, declaring the queue if needed; return once confirmed."""

    async def publish(self, exchange: str, envelope: Envelope) -> None:
        """Publish an event to its fanout exchange (declared if needed); return once confirmed."""

    async def subscribe(self, spec: ConsumerSpec, on_delivery: DeliveryCallback) -> Subscription:
        """Declare ``spec``'s queue and bindings and start consuming it."""


TransportFactory = Callable[[str, TransportSettings], Transport]


def register_transport(scheme: str, factory: str | TransportFactory) -> None:
    """Make ``scheme://`` URLs open transports made by ``factory`` (or ``"module:attr"``).

    Shorthand for :func:`busline.schemes.register_scheme` with only a transport; register an
    error-queue admin there too to give the scheme ``busline errors``.
    """
    schemes.register_scheme(scheme, transport=factory)


def open_transport(url: str, settings: TransportSettings) -> Transport:
    """Create (not yet start) the transport for ``url``.

    Raises ``ValueError`` for a scheme without a transport and ``ImportError``, naming what to
    install, when its module cannot be imported.
    """
    factory: TransportFactory = schemes.resolve(url, "transport")
    return factory(url, settings)
