"""``busline topology``: the RabbitMQ exchanges, queues, bindings and delay queues some buses
need, as a table; with ``--declare``, create them on the broker at ``--url``.

Declaring ahead lets a deploy pipeline holding *configure* rights prepare the broker, so the
services themselves can run with only read and write rights. Declarations are idempotent: run
it on every deploy. The names and arguments are the RabbitMQ transport's own (its topology and
delay-level modules), so what is printed is exactly what a running bus would declare.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from busline.bus import Bus
from busline.cli.common import USAGE, complain
from busline.cli.targets import add_targets, load_all
from busline.messages import MessageKind, wire_name
from busline.retries import RetryPolicy
from busline.urls import mask_url

HELP = "list (or --declare) the exchanges, queues, bindings and delay queues of some buses"


@dataclass(slots=True)
class Entity:
    """One exchange, queue or binding (``name`` is ``queue -> exchange`` for a binding)."""

    kind: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    used_by: set[str] = field(default_factory=set)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``busline topology``'s arguments."""
    add_targets(parser)
    parser.add_argument("--declare", action="store_true", help="create them on the broker at --url")
    parser.add_argument("--url", default=None, help="broker to declare on (default: $BUSLINE_URL)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up connecting, or on one declaration, after this long (default: 30)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the table, and declare it when asked; return the exit status."""
    buses = load_all(args.targets)
    url = args.url or os.environ.get("BUSLINE_URL")
    if args.declare and not url:
        complain("busline topology", "--declare needs --url URL (or BUSLINE_URL)")
        return USAGE
    entities = plan(buses)
    print(as_table(entities))
    if args.declare:
        assert url is not None
        asyncio.run(declare(url, entities, args.timeout))
        print(f"declared {len(entities)} entities on {mask_url(url)}", file=sys.stderr)
    return 0


def plan(buses: Iterable[Bus]) -> list[Entity]:
    """Everything the buses declare when they run: exchanges, queues, bindings, each by name."""
    queue_arguments = _rabbitmq("topology").queue_arguments
    delays = _rabbitmq("delays")
    found: dict[tuple[str, str], Entity] = {}

    def add(kind: str, name: str, service: str, arguments: dict[str, Any] | None = None) -> None:
        entity = found.setdefault((kind, name), Entity(kind, name, arguments or {}))
        entity.used_by.add(service)

    for bus in buses:
        service, queue_type = bus.service, bus.settings.queue_type
        queue_args = queue_arguments(queue_type)
        add("queue", bus.settings.error_queue, service, queue_args)
        policies = {bus.retry}
        for spec in bus.registry.specs:
            add("queue", spec.queue, service, queue_args)
            if spec.kind is MessageKind.EVENT:
                add("exchange", spec.wire_name, service)
                add("binding", f"{spec.queue} -> {spec.wire_name}", service)
            # A sender declares the command's queue too, so an early command is kept.
            for command in spec.sends:
                add("queue", wire_name(command), service, queue_args)
            for event in spec.publishes:
                add("exchange", wire_name(event), service)
            retry = spec.options.get("retry")
            if isinstance(retry, RetryPolicy):
                policies.add(retry)
        levels = {delays.delay_level(delay) for policy in policies for delay in policy.delays}
        for level in sorted(levels):
            # A delay level: a fanout exchange and a TTL queue of one name, bound together.
            name = delays.delay_name(level, queue_type)
            add("exchange", name, service)
            add("queue", name, service, delays.delay_queue_arguments(level, queue_type))
            add("binding", f"{name} -> {name}", service)
    order = {"exchange": 0, "queue": 1, "binding": 2}  # the order they must be declared in
    return sorted(found.values(), key=lambda e: (order[e.kind], e.name))


def as_table(entities: list[Entity]) -> str:
    """Aligned columns: KIND, NAME, USED BY, then the (long) arguments last."""
    rows = [("KIND", "NAME", "USED BY", "ARGUMENTS")]
    for entity in entities:
        shown = " ".join(f"{k}={v!r}" for k, v in sorted(entity.arguments.items()))
        if entity.kind == "exchange":
            shown = "fanout durable"
        rows.append((entity.kind, entity.name, ",".join(sorted(entity.used_by)), shown or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    )


def _rabbitmq(module: str) -> Any:
    """A module of the RabbitMQ transport, imported when needed (the core never needs it).

    By its installed name, which mypy (checking ``transports/`` from the source tree) cannot
    resolve: hence ``Any``.
    """
    try:
        return importlib.import_module(f"busline.transports.rabbitmq.{module}")
    except ImportError as exc:
        raise RuntimeError(
            f"the RabbitMQ transport is not available ({exc}): pip install 'busline[rabbitmq]'"
        ) from exc


async def declare(url: str, entities: list[Entity], within: float = 30.0) -> None:
    """Declare every entity on the broker at ``url``: exchanges, then queues, then bindings.

    Through the transport's own connection manager (URL, TLS and credentials handled as a bus
    does) and topology declarer (refusals reported the same way).
    """
    config = _rabbitmq("config").ConnectionConfig(url, "busline-topology", {})
    topology = _rabbitmq("topology").Topology("quorum", timeout=within)

    async def connected(connection: Any) -> None:
        topology.attach(connection)

    connections = _rabbitmq("connection").ConnectionManager(
        config, connected, lambda: topology.attach(None)
    )
    await connections.start(within)
    try:
        # Queue arguments are given per queue: the topology's own queue type is never used.
        for entity in entities:
            if entity.kind == "exchange":
                await topology.exchange(entity.name)
            elif entity.kind == "queue":
                await topology.queue(entity.name, entity.arguments)
            else:
                queue, _, exchange = entity.name.partition(" -> ")
                await topology.binding(queue, exchange)
    finally:
        await connections.close()
