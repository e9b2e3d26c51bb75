"""The systems under test, looked up by name and imported lazily.

Lazy imports matter: a worker process imports only the one system it runs, so the peak RSS it
reports is that system's own, not the sum of every library in the suite.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from benchmarks.systems.base import OnMessage, System


@dataclass(frozen=True)
class SystemInfo:
    """How to build a system, and what it needs."""

    name: str
    #: ``"module:factory"``; the factory takes ``**options`` and returns a :class:`System`.
    target: str
    #: Whether it needs a RabbitMQ node.
    broker: bool
    description: str
    options: tuple[tuple[str, Any], ...] = ()
    #: Modules it imports (from the ``bench`` extra), checked before anything runs.
    requires: tuple[str, ...] = ()

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]


#: Every system, in report order. ``aio-pika`` is the baseline of every ratio.
SYSTEMS: dict[str, SystemInfo] = {
    info.name: info
    for info in (
        SystemInfo(
            "aio-pika",
            "benchmarks.systems.aiopika_plain:AioPikaPlain",
            True,
            "plain aio-pika, written the way its documentation shows",
            requires=("aio_pika",),
        ),
        SystemInfo(
            "faststream",
            "benchmarks.systems.faststream_app:FastStreamApp",
            True,
            "FastStream RabbitBroker: subscriber + publisher",
            requires=("faststream", "pydantic"),
        ),
        SystemInfo(
            "busline",
            "benchmarks.systems.busline_rabbit:BuslineRabbit",
            True,
            "busline on RabbitMQ, classic queues (same queue type as the others)",
            (("queue_type", "classic"),),
            requires=("aiormq",),
        ),
        SystemInfo(
            "busline-quorum",
            "benchmarks.systems.busline_rabbit:BuslineRabbit",
            True,
            "busline on RabbitMQ with its default quorum queues (extra row)",
            (("queue_type", "quorum"),),
            requires=("aiormq",),
        ),
        SystemInfo(
            "busline-memory",
            "benchmarks.systems.busline_memory:BuslineMemory",
            False,
            "busline on the in-process memory transport (no broker)",
        ),
    )
}

BASELINE = "aio-pika"

#: Which systems run each workload by default (the memory workload is in-process only; the
#: long RSS run is about busline's own growth).
WORKLOAD_SYSTEMS: dict[str, tuple[str, ...]] = {
    "commands": ("aio-pika", "faststream", "busline", "busline-quorum", "busline-memory"),
    "events": ("aio-pika", "faststream", "busline", "busline-quorum", "busline-memory"),
    "latency": ("aio-pika", "faststream", "busline", "busline-quorum", "busline-memory"),
    "memory": ("busline-memory",),
    "rss": ("busline", "busline-memory"),
}


def create(name: str) -> System:
    """Import and build the system called ``name``."""
    info = SYSTEMS[name]
    module_name, _, attr = info.target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    system: System = factory(**dict(info.options))
    return system


__all__ = ["BASELINE", "SYSTEMS", "WORKLOAD_SYSTEMS", "OnMessage", "System", "SystemInfo", "create"]
