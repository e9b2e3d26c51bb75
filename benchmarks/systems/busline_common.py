"""What the busline systems share: message types named per run, and the bus wiring.

One class serves every busline row: the transport comes from the URL (a subclass picks memory),
and options add an outbox store (``store="sqlite" | "postgresql"``, a fresh one per run, see
:mod:`benchmarks.stores`) and an OpenTelemetry set-up (``telemetry=``, see
:mod:`benchmarks.otel`). Which handler runs depends on the topology: the plain one reports to the
tracker and nothing else; in the ``outbox-handler`` workload (``topology.sink_queue`` set) it
also writes one business row through ``ctx.db`` (when there is a store) and sends one command.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

from benchmarks.amqp_tools import queue_depths
from benchmarks.otel import TelemetrySetup, telemetry_setup
from benchmarks.payload import PAYLOAD_FIELDS, payload_fields
from benchmarks.spec import Topology
from benchmarks.stores import BUSINESS_TABLE, INSERT_BUSINESS, BenchStore, StoreKind, fresh_store
from benchmarks.systems.base import OnMessage
from busline import Bus, Command, Context, Event, StoreSettings


def message_types(topology: Topology) -> tuple[type[Command], type[Event]]:
    """A command and an event type whose wire names are this run's queue and exchange.

    Made per run so that every run has its own queue and exchange, exactly the names the plain
    clients use (busline names a command's queue and an event's exchange after the wire name).
    """
    return command_type(topology.queue), _payload_type(Event, topology.exchange)


def command_type(wire_name: str) -> type[Command]:
    """A command type with the suite's payload, sent to the queue ``wire_name``."""
    return _payload_type(Command, wire_name)


def _payload_type(base: Any, wire_name: str) -> Any:
    """A ``base`` (command or event) subclass with the suite's payload fields."""

    # types.new_class passes the ``wire_name=`` class keyword to busline's metaclass; the
    # annotations make the msgspec fields.
    return types.new_class(
        "BenchMessage",
        (base,),
        {"wire_name": wire_name},
        lambda namespace: namespace.update(__annotations__=dict(PAYLOAD_FIELDS)),
    )


def payload(message_type: Any, seq: int, sent_at: float) -> Any:
    """The suite's ~100-byte payload as a ``message_type``."""
    return message_type(**payload_fields(seq, sent_at))


class BuslineSystem:
    """busline with the suite's topology, on whichever transport the URL picks.

    Args:
        store: ``"sqlite"`` or ``"postgresql"``: the bus gets a fresh outbox store of that kind.
        telemetry: One of :data:`benchmarks.otel.MODES` (``"auto"``: busline's default).
        outbox_retention: ``StoreSettings.outbox_retention`` of the bus's store (``None``: the
            default; ``0``: sent rows deleted at once).
        bus_options: Passed to ``Bus`` (``queue_type=...``).
    """

    def __init__(
        self,
        *,
        store: StoreKind | None = None,
        telemetry: str = "auto",
        outbox_retention: float | None = None,
        **bus_options: Any,
    ) -> None:
        self.store_kind = store
        self.outbox_retention = outbox_retention
        self.telemetry_mode = telemetry
        self._bus_options = bus_options
        self._bus: Bus | None = None
        self._message_type: Any = None
        self._send: Callable[[Any], Awaitable[str]] | None = None
        self._exit = AsyncExitStack()
        self._telemetry: TelemetrySetup | None = None
        self._extra: dict[str, Any] = {}
        self._topology: Topology | None = None
        self.store: BenchStore | None = None
        #: Handler runs that wrote and sent (``outbox-handler``), checked against the database
        #: and the sink queue at the end.
        self.handled = 0

    def url_for(self, topology: Topology) -> str:
        """The bus URL for ``topology`` (the broker's, unless a subclass says otherwise)."""
        return topology.url

    async def open_store(self, topology: Topology) -> BenchStore | None:
        """Provision this run's fresh store (none without ``store=``); removed by :meth:`stop`."""
        if self.store_kind is not None and self.store is None:
            self.store = await self._exit.enter_async_context(
                fresh_store(self.store_kind, topology.run_id, topology.pg_url)
            )
        return self.store

    def make_bus(self, topology: Topology, **options: Any) -> Bus:
        """A bus with this system's transport, store and telemetry (not started).

        The telemetry set-up is made once per system, so a run's providers are shut down once.
        """
        store = self.store
        if self.store_kind is not None and store is None:
            raise RuntimeError("open_store() before make_bus()")
        if self._telemetry is None:
            self._telemetry = telemetry_setup(self.telemetry_mode)
        merged: dict[str, Any] = {
            "prefetch": topology.prefetch,
            "error_queue": topology.error_queue,
            **self._bus_options,
            **self._telemetry.bus_options,
            **options,
        }
        if store is not None:
            merged.setdefault("store", store.url)
            if self.outbox_retention is not None:
                settings = merged.get("store_settings") or StoreSettings()
                merged["store_settings"] = replace(settings, outbox_retention=self.outbox_retention)
        return Bus(topology.service, self.url_for(topology), **merged)

    async def start(self, topology: Topology, on_message: OnMessage) -> None:
        """Provision the store, declare the handler(s) and start the bus."""
        self._topology = topology
        command, event_type = message_types(topology)
        await self.open_store(topology)
        bus = self.make_bus(topology)
        self._bus = bus
        if topology.kind == "event":
            for index, name in enumerate(topology.subscriber_names):
                bus.event_subscriber(event_type, name=name)(_handler(index, on_message))
            self._message_type = event_type
        elif topology.sink_queue is not None:
            bus.command_handler(command)(self._outbox_handler(topology.sink_queue, on_message))
            self._message_type = command
        else:
            bus.command_handler(command)(_handler(0, on_message))
            self._message_type = command
        await bus.start()
        self._send = bus.publish if topology.kind == "event" else bus.send

    def _outbox_handler(self, sink_queue: str, on_message: OnMessage) -> Any:
        """The ``outbox-handler`` workload's handler: one business row (with a store) and one
        command sent, both through the context so that, with a store, they commit together."""
        sink = command_type(sink_queue)
        insert = INSERT_BUSINESS[self.store_kind] if self.store_kind is not None else None
        sqlite = self.store_kind == "sqlite"

        async def handle(message: Any, ctx: Context) -> None:
            if insert is not None:
                values = (message.order_id, message.seq, message.sku, message.quantity)
                if sqlite:  # aiosqlite takes a tuple, asyncpg positional arguments
                    await ctx.db.execute(insert, values)
                else:
                    await ctx.db.execute(insert, *values)
            await ctx.send(payload(sink, message.seq, message.sent_at))
            self.handled += 1
            on_message(0, message.seq, message.sent_at)

        return handle

    async def send(self, seq: int, sent_at: float) -> None:
        """``bus.send`` a command (or ``bus.publish`` an event); returns once confirmed."""
        assert self._send is not None, "start() first"
        await self._send(payload(self._message_type, seq, sent_at))

    async def stop(self) -> None:
        """Stop the bus (in-flight handlers finish and are acked first), check what the
        ``outbox-handler`` handlers committed and sent, then remove the store and shut the
        telemetry down."""
        try:
            if self._bus is not None:
                bus, self._bus = self._bus, None
                # Whether busline installed its tracing at all: with no SDK it must not.
                self._extra["traced"] = bus.telemetry is not None
                await bus.stop()
                await self._check_outputs()
        finally:
            if self._telemetry is not None:
                self._extra.update(self._telemetry.shutdown())
            await self._exit.aclose()

    async def _check_outputs(self) -> None:
        """Every handler run of the ``outbox-handler`` workload left exactly one business row
        (with a store) and one message in the sink queue, and no outbox row is left unsent."""
        topology = self._topology
        if topology is None or topology.sink_queue is None:
            return
        problems: list[str] = []
        if not self.url_for(topology).startswith("memory"):
            depth = (await queue_depths(topology.url, (topology.sink_queue,)))[topology.sink_queue]
            if depth != self.handled:
                problems.append(
                    f"{depth} messages in the sink queue for {self.handled} handled"
                    + (
                        " (publishes repeated after a lost connection: was the broker restarted?)"
                        if depth > self.handled
                        else ""
                    )
                )
        if self.store is not None:
            rows = await self.store.count(BUSINESS_TABLE)
            pending = await self.store.count("busline_outbox_transactions", "dispatched_at IS NULL")
            if rows != self.handled:
                problems.append(f"{rows} business rows for {self.handled} handled")
            if pending:
                problems.append(f"{pending} outbox transactions never sent")
        if problems:
            raise RuntimeError("outbox-handler outputs wrong: " + "; ".join(problems))

    def extra_metrics(self) -> dict[str, Any]:
        """Figures beyond the workload's own, known after :meth:`stop` (spans exported)."""
        return dict(self._extra)


def _handler(index: int, on_message: OnMessage) -> Any:
    """A handler for subscriber ``index``; the message type is given to the decorator."""

    async def handle(message: Any) -> None:
        on_message(index, message.seq, message.sent_at)

    return handle
