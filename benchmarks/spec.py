"""What one benchmark run is (:class:`RunSpec`) and the broker names it uses (:class:`Topology`).

A spec travels from the orchestrator to a worker subprocess as JSON, so it holds plain values only.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

MessageKind = Literal["command", "event"]

#: Workload names, in the order the suite runs and reports them.
WORKLOADS: tuple[str, ...] = (
    "commands",
    "events",
    "latency",
    "memory",
    "outbox-relay",
    "outbox-handler",
    "saga",
    "tracing",
    "tracing-rabbit",
    "rss",
)

#: Names that stand for several workloads on the command line (``--workloads outbox``).
WORKLOAD_GROUPS: dict[str, tuple[str, ...]] = {
    "outbox": ("outbox-relay", "outbox-handler"),
    "tracing-all": ("tracing", "tracing-rabbit"),
}

DEFAULT_PG_URL = "postgresql://busline:busline@127.0.0.1:5432/busline"


@dataclass(frozen=True)
class RunSpec:
    """One (system, workload, repeat) run, with every size and option it needs."""

    workload: str
    system: str
    #: Messages measured (for ``latency``: derived from rate x duration by the orchestrator).
    n: int
    #: Messages sent and awaited before the clock starts (connections, caches, JIT-less warm-up).
    warmup: int = 500
    #: Publishes in flight at once: this many sender coroutines each await their confirm.
    window: int = 64
    #: Unacknowledged deliveries per consumer.
    prefetch: int = 32
    #: Subscribers of the event workload (each gets every event).
    subscribers: int = 3
    #: Offered rate of the latency workload, messages per second.
    rate: float = 1000.0
    #: RSS samples taken across the ``rss`` workload's measured run.
    rss_samples: int = 10
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    #: The PostgreSQL database in which a run with a PostgreSQL store makes its own schema.
    pg_url: str = DEFAULT_PG_URL
    #: ``outbox-relay``: messages per ``bus.transaction()`` when the backlog is written.
    outbox_tx_size: int = 10
    #: ``saga``: messages after the start of each instance (``n`` is the instances).
    saga_updates: int = 3
    uvloop: bool = False
    #: Seconds to wait for the last delivery before the run fails (a bound, not a sleep).
    timeout: float = 300.0
    #: Where to write a pyinstrument profile of the measured phase (``None``: no profiling).
    profile_path: str | None = None
    #: Unique per run, so runs never see each other's queues.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def to_json(self) -> str:
        """Serialise for the worker's command line."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Inverse of :meth:`to_json`."""
        data: dict[str, Any] = json.loads(text)
        return cls(**data)

    @property
    def kind(self) -> MessageKind:
        """Whether this workload sends commands (one consumer) or publishes events (fan-out)."""
        return "event" if self.workload == "events" else "command"


@dataclass(frozen=True)
class Topology:
    """Queue and exchange names of one run, shared by every system so they do the same work.

    The names follow busline's conventions (a command's queue is its wire name, a subscriber's
    queue is ``{service}.{subscriber}``) so that the plain clients declare exactly what busline
    declares and a run's leftovers can be checked and deleted by name.
    """

    url: str
    kind: MessageKind
    service: str
    queue: str
    exchange: str
    subscriber_names: tuple[str, ...]
    error_queue: str
    prefetch: int
    #: This run's id (names its PostgreSQL schema, say).
    run_id: str = ""
    #: Where a run's PostgreSQL store makes its schema (systems with ``store="postgresql"``).
    pg_url: str = DEFAULT_PG_URL
    #: ``outbox-handler``: the queue each handler sends one command to (the outbox's output);
    #: ``None``: the handler sends nothing.
    sink_queue: str | None = None
    #: Queues a run fills on purpose and nobody consumes (the sink, the relay's target): not
    #: leftovers, but deleted after the run like the others.
    scratch_queues: tuple[str, ...] = ()
    #: Queues a run consumes besides :attr:`consumer_queues` (the saga's updates, its sink):
    #: checked empty after the run, then deleted.
    extra_queues: tuple[str, ...] = ()

    @property
    def subscriber_queues(self) -> tuple[str, ...]:
        """One durable queue per subscriber, bound to :attr:`exchange`."""
        return tuple(f"{self.service}.{name}" for name in self.subscriber_names)

    @property
    def consumer_queues(self) -> tuple[str, ...]:
        """The queues this run consumes from."""
        return self.subscriber_queues if self.kind == "event" else (self.queue,)

    @property
    def subscribers(self) -> int:
        """How many consumers each message reaches."""
        return len(self.subscriber_names) if self.kind == "event" else 1


def topology_for(spec: RunSpec, url: str) -> Topology:
    """The names ``spec`` uses on the broker at ``url``."""
    service = f"bench-{spec.run_id}"
    scratch: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    sink = None
    if spec.workload == "outbox-handler":
        sink = f"{service}.sink"
        scratch = (sink,)
    elif spec.workload == "outbox-relay":
        # One queue per phase, so each phase's count can be checked on its own.
        scratch = (f"{service}.direct", f"{service}.relay")
    elif spec.workload == "saga":
        # The updates' queue, and the sink its steps send to (consumed by a plain handler).
        extra = (f"{service}.upd", f"{service}.sink")
    return Topology(
        url=url,
        kind=spec.kind,
        service=service,
        queue=f"{service}.cmd",
        exchange=f"{service}.evt",
        subscriber_names=tuple(f"s{i}" for i in range(spec.subscribers)),
        error_queue=f"{service}.error",
        prefetch=spec.prefetch,
        run_id=spec.run_id,
        pg_url=spec.pg_url,
        sink_queue=sink,
        scratch_queues=scratch,
        extra_queues=extra,
    )
