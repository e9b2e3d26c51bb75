"""The workloads. Each starts the system, warms it up, measures one phase and stops it.

Clocks start at the first send and stop at the last handler completion (the ack follows the
handler; :func:`benchmarks.amqp_tools.check_and_clean` then proves every message was acked).
Connections, declarations and consumer start-up happen before the clock starts.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from time import perf_counter, process_time
from typing import Any

from benchmarks.drive import drive_paced, drive_window
from benchmarks.harness import MIB, current_rss, percentile
from benchmarks.payload import Tracker
from benchmarks.probe import Probe
from benchmarks.spec import RunSpec, Topology
from benchmarks.systems.base import System

Workload = Callable[[RunSpec, System, Topology, Probe], Awaitable[dict[str, Any]]]


async def _started(spec: RunSpec, system: System, topology: Topology) -> tuple[Tracker, int]:
    """Start ``system``, run the warm-up phase, return the tracker and the next free seq."""
    tracker = Tracker(topology.subscribers)
    await system.start(topology, tracker.on_message)
    if spec.warmup > 0:
        tracker.expect(0, spec.warmup)
        await drive_window(system.send, 0, spec.warmup, spec.window)
        await tracker.wait(spec.timeout)
    return tracker, spec.warmup


def _integrity(tracker: Tracker) -> dict[str, Any]:
    return {"duplicates": tracker.duplicates, "unexpected": tracker.unexpected}


async def throughput(
    spec: RunSpec, system: System, topology: Topology, probe: Probe
) -> dict[str, Any]:
    """Commands end to end (``commands``, ``memory``) or events fan-out (``events``)."""
    tracker, first = await _started(spec, system, topology)
    try:
        tracker.expect(first, spec.n)
        with probe():
            cpu_started = process_time()
            started = perf_counter()
            mean_send = await drive_window(system.send, first, spec.n, spec.window)
            sent = perf_counter()
            finished = await tracker.wait(spec.timeout)
            cpu = process_time() - cpu_started
    finally:
        await system.stop()
    elapsed = finished - started
    metrics = {
        "messages": spec.n,
        "subscribers": topology.subscribers,
        "elapsed_s": elapsed,
        "send_phase_s": sent - started,
        "rate": spec.n / elapsed,
        "deliveries_rate": spec.n * topology.subscribers / elapsed,
        # CPU of this process per message: less sensitive than wall time to other load on the
        # machine, and the thing to cut when the Python process is the bottleneck.
        "cpu_us_per_msg": cpu / spec.n * 1e6,
        "send_mean_ms": mean_send * 1e3,
        **_integrity(tracker),
    }
    # What the system knows only after stopping (e.g. spans its telemetry exported).
    extra = getattr(system, "extra_metrics", None)
    if extra is not None:
        metrics.update(extra())
        if "spans_exported" in metrics:
            metrics["spans_per_msg"] = metrics["spans_exported"] / (spec.warmup + spec.n)
    return metrics


async def latency(
    spec: RunSpec, system: System, topology: Topology, probe: Probe
) -> dict[str, Any]:
    """Send-to-handler latency at a fixed offered rate."""
    tracker, first = await _started(spec, system, topology)
    try:
        tracker.expect(first, spec.n, record_latency=True)
        with probe():
            paced = await drive_paced(system.send, first, spec.n, spec.rate, spec.window)
            await tracker.wait(spec.timeout)
    finally:
        await system.stop()
    samples = sorted(tracker.latencies or ())
    lateness = sorted(paced.lateness)
    durations = sorted(paced.durations)
    span = paced.last_send - paced.first_send
    return {
        "messages": spec.n,
        "offered_rate": spec.rate,
        "achieved_rate": (spec.n - 1) / span if span > 0 else float(spec.n),
        "p50_ms": percentile(samples, 0.50) * 1e3,
        "p95_ms": percentile(samples, 0.95) * 1e3,
        "p99_ms": percentile(samples, 0.99) * 1e3,
        "max_ms": samples[-1] * 1e3 if samples else float("nan"),
        "send_lateness_p99_ms": percentile(lateness, 0.99) * 1e3,
        "send_p50_ms": percentile(durations, 0.50) * 1e3,
        "send_p99_ms": percentile(durations, 0.99) * 1e3,
        **_integrity(tracker),
    }


def _chunks(total: int, parts: int) -> Iterator[int]:
    """Split ``total`` into ``parts`` near-equal positive sizes."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    for index in range(parts):
        yield base + (1 if index < extra else 0)


async def rss_growth(
    spec: RunSpec, system: System, topology: Topology, probe: Probe
) -> dict[str, Any]:
    """RSS at the start and end of a long run, after warm-up, sampled along the way."""
    tracker, first = await _started(spec, system, topology)
    samples: list[tuple[int, float]] = []
    try:
        # Collected before each reading so garbage awaiting collection doesn't count as growth.
        gc.collect()
        start_rss = current_rss()
        # Live Python allocations: if RSS grows but these don't, the allocator is holding on
        # to freed memory (a high-water mark), not the code to objects (a leak).
        start_blocks = sys.getallocatedblocks()
        samples.append((0, start_rss / MIB))
        done = 0
        started = perf_counter()
        with probe():
            for size in _chunks(spec.n, spec.rss_samples):
                tracker.expect(first + done, size)
                await drive_window(system.send, first + done, size, spec.window)
                await tracker.wait(spec.timeout)
                done += size
                samples.append((done, current_rss() / MIB))
        elapsed = perf_counter() - started
        gc.collect()
        end_rss = current_rss()
        end_blocks = sys.getallocatedblocks()
    finally:
        await system.stop()
    return {
        "messages": spec.n,
        "rate": spec.n / elapsed,
        "rss_start_mb": start_rss / MIB,
        "rss_end_mb": end_rss / MIB,
        "growth_mb": (end_rss - start_rss) / MIB,
        "live_blocks_growth": end_blocks - start_blocks,
        "samples": samples,
        **_integrity(tracker),
    }


def _relay_vs_direct(
    spec: RunSpec, system: System, topology: Topology, probe: Probe
) -> Awaitable[dict[str, Any]]:
    # Imported when used: it imports busline, which a worker measuring another client must not
    # load (the peak RSS a worker reports is its one system's).
    from benchmarks.outbox import relay_vs_direct

    return relay_vs_direct(spec, system, topology, probe)


def _saga_steps(
    spec: RunSpec, system: System, topology: Topology, probe: Probe
) -> Awaitable[dict[str, Any]]:
    from benchmarks.sagas import saga_steps  # imports busline: only when used, as above

    return saga_steps(spec, system, topology, probe)


WORKLOAD_FUNCTIONS: dict[str, Workload] = {
    "commands": throughput,
    "events": throughput,
    "memory": throughput,
    "latency": latency,
    "outbox-relay": _relay_vs_direct,
    # The commands workload; the topology's sink queue makes the handler write and send.
    "outbox-handler": throughput,
    "saga": _saga_steps,
    # The commands workload on systems that differ only in their telemetry.
    "tracing": throughput,
    "tracing-rabbit": throughput,
    "rss": rss_growth,
}

#: The figure each workload is judged by, and whether higher is better.
PRIMARY_METRIC: dict[str, tuple[str, bool]] = {
    "commands": ("rate", True),
    "events": ("rate", True),
    "memory": ("rate", True),
    "latency": ("p99_ms", False),
    # Per run, on one bus: the relay's rate over direct publishing's.
    "outbox-relay": ("relay_vs_direct", True),
    "outbox-handler": ("rate", True),
    # Steps (starts and updates) per second.
    "saga": ("rate", True),
    "tracing": ("rate", True),
    "tracing-rabbit": ("rate", True),
    "rss": ("growth_mb", False),
}


def no_probe() -> AbstractContextManager[Any]:
    """The default probe: measure without profiling."""
    return nullcontext()
