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
WORKLOADS: tuple[str, ...] = ("commands", "events", "latency", "memory", "rss")


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
    return Topology(
        url=url,
        kind=spec.kind,
        service=service,
        queue=f"{service}.cmd",
        exchange=f"{service}.evt",
        subscriber_names=tuple(f"s{i}" for i in range(spec.subscribers)),
        error_queue=f"{service}.error",
        prefetch=spec.prefetch,
    )
