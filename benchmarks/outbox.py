"""The ``outbox-relay`` workload: how fast the outbox relay empties a backlog, against publishing
the same messages directly with ``bus.send``, on the same bus in the same run.

How the backlog is made, with busline's public API only: a second instance of the same service
(same name, same store), whose publishes are all refused the way an unreachable broker refuses
them (a publish middleware raising :class:`~busline.errors.PublishTimeoutError`), commits
``n`` messages with ``bus.transaction()`` in transactions of ``outbox_tx_size``. As
docs/outbox.md promises for an outage, each transaction commits, its rows stay pending and are
left to the relay. That instance's own relay is stopped first, so only the measured bus's relay
sends them. The measured bus is a plain bus with the store, on RabbitMQ (classic queues), whose
relay idles (``relay_interval`` of an hour) until the workload wakes it.

What is timed:

- relay: from ``relay.wake()`` until no message of the service is pending any more in the
  database (the relay marks transactions dispatched after the broker confirmed their messages,
  once per round; a reader of its own polls the index of pending transactions every 10 ms);
- direct: ``n`` ``bus.send`` calls of the same payload with ``window`` in flight, as every other
  workload sends, until the last is confirmed: half of them just before the relay drains, half
  just after, so that a machine slowing down or speeding up during the run does not favour
  either side. The relay's ``relay_window`` is set to the same
  ``window``, so both phases have as many messages awaiting a confirm at most.

Neither phase has a consumer: this is the publishing side alone, so neither pays for handlers.
Each phase sends to a queue of its own, whose depth must then be exactly what it sent. Both
phases are warmed up first (``warmup`` messages each). The ratio relay ÷ direct is per run, so
broker and machine drift between runs cancels out.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from time import perf_counter, process_time
from typing import TYPE_CHECKING, Any

from benchmarks.amqp_tools import queue_depths
from benchmarks.drive import drive_window
from benchmarks.spec import RunSpec, Topology
from benchmarks.stores import BenchStore
from benchmarks.systems.base import System
from benchmarks.systems.busline_common import BuslineSystem, command_type, payload
from busline import Bus, Middleware, OutgoingMessage, PublishTimeoutError, StoreSettings
from busline.testing import memory_url

if TYPE_CHECKING:
    from benchmarks.probe import Probe

#: The measured relay waits this long between polls when idle: in practice, until woken.
IDLE = 3600.0


class Unreachable(Middleware):
    """Refuses every publish as an unreachable broker does: what makes a backlog."""

    async def on_publish(
        self, out: OutgoingMessage, call_next: Callable[[OutgoingMessage], Awaitable[None]]
    ) -> None:
        """Fail without sending (the store notes the error and leaves the rows pending)."""
        raise PublishTimeoutError("broker unreachable (benchmark: building a relay backlog)")


async def relay_vs_direct(
    spec: RunSpec, system: System, topology: Topology, probe: Probe
) -> dict[str, Any]:
    """Relay drain rate and direct publish rate of ``spec.n`` messages, and their ratio."""
    if not isinstance(system, BuslineSystem) or system.store_kind is None:
        raise ValueError(f"{spec.system}: the outbox-relay workload needs a busline store system")
    async with _relay_bench(spec, system, topology) as bench:
        # Warm-up: connections, queue declarations, prepared statements, the relay's first
        # rounds, on both paths.
        if spec.warmup > 0:
            await bench.fill(0, spec.warmup)
            await bench.drain()
            await bench.direct(0, spec.warmup)
        first, half = spec.warmup, spec.n // 2
        fill_s = await bench.fill(first, spec.n)
        with probe():
            # Direct sends before and after the relay (half each): drift of a noisy machine
            # over the run weighs on both sides of the ratio alike.
            before = await bench.direct(first, half)
            relay = await bench.relay()
            after = await bench.direct(first + half, spec.n - half)
    expected = spec.warmup + spec.n
    depths = await queue_depths(topology.url, topology.scratch_queues)
    if any(depth != expected for depth in depths.values()):
        raise RuntimeError(f"expected {expected} messages in each queue, found {depths}")
    direct = (before[0] + after[0], before[1] + after[1])
    return _metrics(spec, fill_s, relay, direct)


def _metrics(
    spec: RunSpec, fill_s: float, relay: tuple[float, float], direct: tuple[float, float]
) -> dict[str, Any]:
    """The workload's figures from the (wall, CPU) seconds of each phase."""
    relay_rate, direct_rate = spec.n / relay[0], spec.n / direct[0]
    return {
        "messages": spec.n,
        "tx_size": spec.outbox_tx_size,
        "relay_s": relay[0],
        "relay_rate": relay_rate,
        "relay_cpu_us_per_msg": relay[1] / spec.n * 1e6,
        "direct_s": direct[0],
        "direct_rate": direct_rate,
        "direct_cpu_us_per_msg": direct[1] / spec.n * 1e6,
        "relay_vs_direct": relay_rate / direct_rate,
        # Committing the backlog (refused dispatch included): the writing side, unmeasured.
        "fill_rate": spec.n / fill_s,
        # The queue depths checked by the caller are this workload's loss and duplicate check.
        "duplicates": 0,
        "unexpected": 0,
    }


@dataclass
class _RelayBench:
    """The measured bus, the writer that makes its backlog, and the three things timed."""

    spec: RunSpec
    service: str
    bus: Bus
    writer: Bus
    store: BenchStore
    direct_type: Any
    relay_type: Any

    async def fill(self, first: int, count: int) -> float:
        """Commit messages ``first .. first+count-1`` through the writer, ``outbox_tx_size`` per
        ``bus.transaction()``; their publishes are refused, so they stay for the relay."""
        began = perf_counter()
        size = self.spec.outbox_tx_size
        for start in range(first, first + count, size):
            async with self.writer.transaction() as tx:
                for seq in range(start, min(first + count, start + size)):
                    await tx.send(payload(self.relay_type, seq, 0.0))
        return perf_counter() - began

    async def drain(self) -> float:
        """Wake the measured bus's relay; the ``perf_counter()`` when nothing is pending."""
        self.bus.storage.relay.wake()
        return await self.store.wait_drained(self.service, self.spec.timeout)

    async def relay(self) -> tuple[float, float]:
        """Time a drain: wall seconds from the wake until seen drained, and CPU seconds."""
        cpu_started, started = process_time(), perf_counter()
        finished = await self.drain()
        return finished - started, process_time() - cpu_started

    async def direct(self, first: int, count: int) -> tuple[float, float]:
        """``bus.send`` messages with ``window`` in flight; wall and CPU seconds taken."""

        async def send(seq: int, sent_at: float) -> None:
            await self.bus.send(payload(self.direct_type, seq, sent_at))

        cpu_started, started = process_time(), perf_counter()
        await drive_window(send, first, count, self.spec.window)
        return perf_counter() - started, process_time() - cpu_started


@asynccontextmanager
async def _relay_bench(
    spec: RunSpec, system: BuslineSystem, topology: Topology
) -> AsyncIterator[_RelayBench]:
    """Start the measured bus and the writer on the run's fresh store; stop both afterwards."""
    # busline's parent logger, not the store's own: its name is the core's business.
    busline_log = logging.getLogger("busline")
    async with AsyncExitStack() as stack:
        # Unwound in reverse, each step even if another failed: the log level comes back, the
        # writer and the bus stop, then the system removes the store.
        stack.push_async_callback(system.stop)
        store = await system.open_store(topology)
        assert store is not None
        # The relay gets the same window of unconfirmed messages as the direct sends.
        relay_settings = StoreSettings(
            relay_interval=IDLE, relay_max_backoff=IDLE, relay_window=spec.window
        )
        bus = system.make_bus(topology, store_settings=relay_settings)
        stack.push_async_callback(bus.stop)
        # The writer: the same service and store, but on an in-process transport that it never
        # reaches (every publish is refused first), so nothing it commits leaves by itself.
        writer = Bus(
            topology.service,
            memory_url("bench-outbox-writer"),
            store=store.url,
            middleware=[Unreachable()],
        )
        stack.push_async_callback(writer.stop)
        # Each refused transaction logs a warning; thousands of them would only fill stderr.
        stack.callback(busline_log.setLevel, busline_log.level)
        busline_log.setLevel(logging.ERROR)
        await bus.start()
        await writer.start()
        # Only the measured bus's relay may send the backlog.
        await writer.storage.relay.stop()
        direct_queue, relay_queue = topology.scratch_queues
        yield _RelayBench(
            spec,
            topology.service,
            bus,
            writer,
            store,
            command_type(direct_queue),
            command_type(relay_queue),
        )
