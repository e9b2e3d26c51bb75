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
    #: Whether it needs a PostgreSQL server (a store of that kind).
    postgres: bool = False
    #: The share of a workload's message count this system runs. The in-process rows with the
    #: OpenTelemetry SDK are ~15x slower than the rest: a twentieth keeps their runs as long as
    #: the others'. Rates are per message, so the rows stay comparable.
    size_factor: float = 1.0

    def size(self, n: int) -> int:
        """How many messages this system runs where a workload asks for ``n``."""
        return max(1, round(n * self.size_factor))

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
        # -- the outbox (issue 5): busline on RabbitMQ, classic queues, with a store --------
        SystemInfo(
            "busline-sqlite",
            "benchmarks.systems.busline_rabbit:BuslineRabbit",
            True,
            "busline on RabbitMQ (classic) with a SQLite outbox store, a fresh file per run",
            (("queue_type", "classic"), ("store", "sqlite")),
            requires=("aiormq", "aiosqlite"),
        ),
        SystemInfo(
            "busline-postgresql",
            "benchmarks.systems.busline_rabbit:BuslineRabbit",
            True,
            "busline on RabbitMQ (classic) with a PostgreSQL outbox store, a fresh schema per run",
            (("queue_type", "classic"), ("store", "postgresql")),
            requires=("aiormq", "asyncpg"),
            postgres=True,
        ),
        SystemInfo(
            "busline-postgresql-lean",
            "benchmarks.systems.busline_rabbit:BuslineRabbit",
            True,
            "busline-postgresql with outbox_retention=0: sent rows deleted, not kept",
            (("queue_type", "classic"), ("store", "postgresql"), ("outbox_retention", 0)),
            requires=("aiormq", "asyncpg"),
            postgres=True,
        ),
        # -- tracing (issue 6): the same bus with tracing off, or with the OpenTelemetry SDK ---
        SystemInfo(
            "busline-memory-untraced",
            "benchmarks.systems.busline_memory:BuslineMemory",
            False,
            "busline-memory with tracing=False",
            (("telemetry", "off"),),
        ),
        SystemInfo(
            "busline-memory-otel",
            "benchmarks.systems.busline_memory:BuslineMemory",
            False,
            "busline-memory with an SDK TracerProvider + BatchSpanProcessor (spans dropped "
            "by the exporter)",
            (("telemetry", "sdk"),),
            requires=("opentelemetry.sdk",),
            size_factor=0.05,
        ),
        SystemInfo(
            "busline-memory-otel-metrics",
            "benchmarks.systems.busline_memory:BuslineMemory",
            False,
            "busline-memory-otel plus an SDK MeterProvider (periodic reader, dropped)",
            (("telemetry", "sdk+metrics"),),
            requires=("opentelemetry.sdk",),
            size_factor=0.05,
        ),
        SystemInfo(
            "busline-untraced",
            "benchmarks.systems.busline_rabbit:BuslineRabbit",
            True,
            "busline on RabbitMQ (classic) with tracing=False",
            (("queue_type", "classic"), ("telemetry", "off")),
            requires=("aiormq",),
        ),
        SystemInfo(
            "busline-otel",
            "benchmarks.systems.busline_rabbit:BuslineRabbit",
            True,
            "busline on RabbitMQ (classic) with an SDK TracerProvider + BatchSpanProcessor",
            (("queue_type", "classic"), ("telemetry", "sdk")),
            requires=("aiormq", "opentelemetry.sdk"),
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
    # Each run measures the relay and, on the same bus, direct publishing (the ratio's base).
    "outbox-relay": ("busline-sqlite", "busline-postgresql", "busline-postgresql-lean"),
    "outbox-handler": ("busline", "busline-sqlite", "busline-postgresql"),
    # "busline-memory" and "busline" are busline's default (tracing=None) with no SDK installed.
    "tracing": (
        "busline-memory-untraced",
        "busline-memory",
        "busline-memory-otel",
        "busline-memory-otel-metrics",
    ),
    "tracing-rabbit": ("busline-untraced", "busline", "busline-otel"),
    "rss": ("busline", "busline-memory"),
}

#: The row each workload's ratios are taken against (``vs_baseline``); plain aio-pika unless
#: the workload compares busline with itself.
WORKLOAD_BASELINES: dict[str, str] = {
    "outbox-handler": "busline",
    "tracing": "busline-memory-untraced",
    "tracing-rabbit": "busline-untraced",
}


def baseline_of(workload: str) -> str:
    """The system whose primary metric is the 1.00 of ``workload``'s ratios."""
    return WORKLOAD_BASELINES.get(workload, BASELINE)


def create(name: str) -> System:
    """Import and build the system called ``name``."""
    info = SYSTEMS[name]
    module_name, _, attr = info.target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    system: System = factory(**dict(info.options))
    return system


__all__ = [
    "BASELINE",
    "SYSTEMS",
    "WORKLOAD_BASELINES",
    "WORKLOAD_SYSTEMS",
    "OnMessage",
    "System",
    "SystemInfo",
    "baseline_of",
    "create",
]
