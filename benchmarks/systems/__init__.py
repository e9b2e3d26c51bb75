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


_RABBIT = "benchmarks.systems.busline_rabbit:BuslineRabbit"
_MEMORY = "benchmarks.systems.busline_memory:BuslineMemory"


def _busline(name: str, description: str, *requires: str, **options: Any) -> SystemInfo:
    """A busline row on RabbitMQ (classic queues unless ``queue_type`` says otherwise)."""
    options = {"queue_type": "classic", **options}
    return SystemInfo(
        name,
        _RABBIT,
        True,
        description,
        tuple(options.items()),
        requires=("aiormq", *requires),
        postgres=options.get("store") == "postgresql",
    )


def _memory(name: str, description: str, *requires: str, **options: Any) -> SystemInfo:
    """A busline row on the in-process memory transport; the SDK rows run a twentieth of the
    messages (see :attr:`SystemInfo.size_factor`)."""
    sdk = str(options.get("telemetry", "")).startswith("sdk")
    return SystemInfo(
        name,
        _MEMORY,
        False,
        description,
        tuple(options.items()),
        requires=requires,
        size_factor=0.05 if sdk else 1.0,
    )


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
        _busline("busline", "busline on RabbitMQ, classic queues (same queue type as the others)"),
        _busline(
            "busline-quorum",
            "busline on RabbitMQ with its default quorum queues (extra row)",
            queue_type="quorum",
        ),
        _memory("busline-memory", "busline on the in-process memory transport (no broker)"),
        SystemInfo(
            "asyncio-queue",
            "benchmarks.systems.asyncio_queue:AsyncioQueue",
            False,
            "a bare bounded asyncio.Queue handing the payload dicts to 8 workers (the memory "
            "workload's baseline)",
        ),
        # -- the outbox (issue 5): busline on RabbitMQ, classic queues, with a store --------
        _busline(
            "busline-sqlite",
            "busline on RabbitMQ (classic) with a SQLite outbox store, a fresh file per run",
            "aiosqlite",
            store="sqlite",
        ),
        _busline(
            "busline-postgresql",
            "busline on RabbitMQ (classic) with a PostgreSQL outbox store, a fresh schema per run",
            "asyncpg",
            store="postgresql",
        ),
        _busline(
            "busline-postgresql-lean",
            "busline-postgresql with outbox_retention=0: sent rows deleted, not kept",
            "asyncpg",
            store="postgresql",
            outbox_retention=0,
        ),
        # -- sagas: the same stores, the handler replaced by a saga's steps --------------------
        _busline(
            "busline-sqlite-saga",
            "busline-sqlite whose commands drive a saga (state in the store) instead of a handler",
            "aiosqlite",
            store="sqlite",
            saga=True,
        ),
        _busline(
            "busline-postgresql-saga",
            "busline-postgresql whose commands drive a saga instead of a handler",
            "asyncpg",
            store="postgresql",
            saga=True,
        ),
        # -- tracing (issue 6): the same bus with tracing off, or with the OpenTelemetry SDK ---
        _memory("busline-memory-untraced", "busline-memory with tracing=False", telemetry="off"),
        _memory(
            "busline-memory-otel",
            "busline-memory with an SDK TracerProvider + BatchSpanProcessor (spans dropped "
            "by the exporter)",
            "opentelemetry.sdk",
            telemetry="sdk",
        ),
        _memory(
            "busline-memory-otel-metrics",
            "busline-memory-otel plus an SDK MeterProvider (periodic reader, dropped)",
            "opentelemetry.sdk",
            telemetry="sdk+metrics",
        ),
        _busline(
            "busline-untraced", "busline on RabbitMQ (classic) with tracing=False", telemetry="off"
        ),
        _busline(
            "busline-otel",
            "busline on RabbitMQ (classic) with an SDK TracerProvider + BatchSpanProcessor",
            "opentelemetry.sdk",
            telemetry="sdk",
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
    "memory": ("asyncio-queue", "busline-memory"),
    # Each run measures the relay and, on the same bus, direct publishing (the ratio's base).
    "outbox-relay": ("busline-sqlite", "busline-postgresql", "busline-postgresql-lean"),
    "outbox-handler": ("busline", "busline-sqlite", "busline-postgresql"),
    # Each saga row beside the plain handler on the same store (its ratio's base).
    "saga": (
        "busline-sqlite",
        "busline-sqlite-saga",
        "busline-postgresql",
        "busline-postgresql-saga",
    ),
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
    "memory": "asyncio-queue",
    "outbox-handler": "busline",
    "tracing": "busline-memory-untraced",
    "tracing-rabbit": "busline-untraced",
}


#: Rows whose ratio is taken against a row of their own rather than the workload's baseline:
#: each saga row against the plain handler on the same store (each handler row its own 1.00).
ROW_BASELINES: dict[str, dict[str, str]] = {
    "saga": {
        "busline-sqlite": "busline-sqlite",
        "busline-sqlite-saga": "busline-sqlite",
        "busline-postgresql": "busline-postgresql",
        "busline-postgresql-saga": "busline-postgresql",
    },
}


def baseline_of(workload: str, system: str | None = None) -> str:
    """The system whose primary metric is the 1.00 of ``workload``'s ratios (of ``system``'s
    row, when given: some rows have a base of their own, see :data:`ROW_BASELINES`)."""
    own = ROW_BASELINES.get(workload, {})
    if system is not None and system in own:
        return own[system]
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
    "ROW_BASELINES",
    "SYSTEMS",
    "WORKLOAD_BASELINES",
    "WORKLOAD_SYSTEMS",
    "OnMessage",
    "System",
    "SystemInfo",
    "baseline_of",
    "create",
]
