"""What the two busline systems share: message types named per run, and the bus wiring."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.payload import CURRENCY, QUANTITY, SKU
from benchmarks.spec import Topology
from benchmarks.systems.base import OnMessage
from busline import Bus, Command, Event


def message_types(topology: Topology) -> tuple[type[Command], type[Event]]:
    """A command and an event type whose wire names are this run's queue and exchange.

    Made per run so that every run has its own queue and exchange, exactly the names the plain
    clients use (busline names a command's queue and an event's exchange after the wire name).
    """

    class BenchCommand(Command, wire_name=topology.queue):
        seq: int
        sent_at: float
        order_id: str
        sku: str
        quantity: int
        currency: str

    class BenchEvent(Event, wire_name=topology.exchange):
        seq: int
        sent_at: float
        order_id: str
        sku: str
        quantity: int
        currency: str

    return BenchCommand, BenchEvent


class BuslineSystem:
    """busline with the suite's topology, on whichever transport the URL picks."""

    def __init__(self, **bus_options: Any) -> None:
        self._bus_options = bus_options
        self._bus: Bus | None = None
        self._message_type: Any = None
        self._send: Callable[[Any], Awaitable[str]] | None = None

    def url_for(self, topology: Topology) -> str:
        """The bus URL for ``topology`` (the broker's, unless a subclass says otherwise)."""
        return topology.url

    async def start(self, topology: Topology, on_message: OnMessage) -> None:
        """Declare the handler(s) and start the bus."""
        command_type, event_type = message_types(topology)
        bus = Bus(
            topology.service,
            self.url_for(topology),
            prefetch=topology.prefetch,
            error_queue=topology.error_queue,
            **self._bus_options,
        )
        if topology.kind == "event":
            for index, name in enumerate(topology.subscriber_names):
                bus.event_subscriber(event_type, name=name)(_handler(index, on_message))
            self._message_type = event_type
        else:
            bus.command_handler(command_type)(_handler(0, on_message))
            self._message_type = command_type
        self._bus = bus
        await bus.start()
        self._send = bus.publish if topology.kind == "event" else bus.send

    async def send(self, seq: int, sent_at: float) -> None:
        """``bus.send`` a command (or ``bus.publish`` an event); returns once confirmed."""
        assert self._send is not None, "start() first"
        await self._send(
            self._message_type(
                seq=seq,
                sent_at=sent_at,
                order_id=f"order-{seq:08d}",
                sku=SKU,
                quantity=QUANTITY,
                currency=CURRENCY,
            )
        )

    async def stop(self) -> None:
        """Stop the bus: in-flight handlers finish and are acked first."""
        if self._bus is not None:
            await self._bus.stop()
            self._bus = None


def _handler(index: int, on_message: OnMessage) -> Any:
    """A handler for subscriber ``index``; the message type is given to the decorator."""

    async def handle(message: Any) -> None:
        on_message(index, message.seq, message.sent_at)

    return handle
