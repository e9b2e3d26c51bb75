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
from contextlib import AsyncExitStack
from time import perf_counter, process_time
from typing import TYPE_CHECKING, Any

from benchmarks.amqp_tools import queue_depths
from benchmarks.drive import drive_window
from benchmarks.spec import RunSpec, Topology
from benchmarks.systems.base import System
from benchmarks.systems.busline_common import BuslineSystem, command_type, payload
from busline import Bus, Middleware, OutgoingMessage, PublishTimeoutError, StoreSettings
from busline.middleware import PublishNext
from busline.testing import memory_url

if TYPE_CHECKING:
    from benchmarks.workloads import Probe

#: The measured relay waits this long between polls when idle: in practice, until woken.
IDLE = 3600.0


class Unreachable(Middleware):
    """Refuses every publish as an unreachable broker does: what makes a backlog."""

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        """Fail without sending (``Outbox`` notes the error and leaves the rows pending)."""
        raise PublishTimeoutError("broker unreachable (benchmark: building a relay backlog)")


async def relay_vs_direct(
    spec: RunSpec, system: System, topology: Topology, probe: Probe
) -> dict[str, Any]:
    """Relay drain rate and direct publish rate of ``spec.n`` messages, and their ratio."""
    if not isinstance(system, BuslineSystem) or system.store_kind is None:
        raise ValueError(f"{spec.system}: the outbox-relay workload needs a busline store system")
    direct_queue, relay_queue = topology.scratch_queues
    direct_type = command_type(direct_queue)
    relay_type = command_type(relay_queue)
    outbox_log = logging.getLogger("busline.outbox")
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
        stack.callback(outbox_log.setLevel, outbox_log.level)
        outbox_log.setLevel(logging.ERROR)

        await bus.start()
        await writer.start()
        assert writer.outbox is not None and bus.outbox is not None
        await writer.outbox.relay.stop()
        relay = bus.outbox.relay

        async def fill(first: int, count: int) -> float:
            began = perf_counter()
            for start in range(first, first + count, spec.outbox_tx_size):
                async with writer.transaction() as tx:
                    for seq in range(start, min(first + count, start + spec.outbox_tx_size)):
                        await tx.send(payload(relay_type, seq, 0.0))
            return perf_counter() - began

        async def drain() -> float:
            relay.wake()
            return await store.wait_drained(topology.service, spec.timeout)

        async def send(seq: int, sent_at: float) -> None:
            await bus.send(payload(direct_type, seq, sent_at))

        # Warm-up: connections, queue declarations, prepared statements, the relay's first
        # rounds, on both paths.
        if spec.warmup > 0:
            await fill(0, spec.warmup)
            await drain()
            await drive_window(send, 0, spec.warmup, spec.window)
        first = spec.warmup

        async def direct(start: int, count: int) -> tuple[float, float]:
            cpu_started = process_time()
            began = perf_counter()
            await drive_window(send, start, count, spec.window)
            return perf_counter() - began, process_time() - cpu_started

        fill_s = await fill(first, spec.n)
        half = spec.n // 2
        with probe():
            # Direct sends before and after the relay (half each): drift of a noisy machine
            # over the run weighs on both sides of the ratio alike.
            direct_before_s, direct_before_cpu = await direct(first, half)

            cpu_started = process_time()
            started = perf_counter()
            finished = await drain()
            relay_cpu = process_time() - cpu_started

            direct_after_s, direct_after_cpu = await direct(first + half, spec.n - half)

    expected = spec.warmup + spec.n
    depths = await queue_depths(topology.url, (direct_queue, relay_queue))
    if any(depth != expected for depth in depths.values()):
        raise RuntimeError(f"expected {expected} messages in each queue, found {depths}")
    relay_s = finished - started
    direct_s = direct_before_s + direct_after_s
    direct_cpu = direct_before_cpu + direct_after_cpu
    relay_rate = spec.n / relay_s
    direct_rate = spec.n / direct_s
    return {
        "messages": spec.n,
        "tx_size": spec.outbox_tx_size,
        "relay_s": relay_s,
        "relay_rate": relay_rate,
        "relay_cpu_us_per_msg": relay_cpu / spec.n * 1e6,
        "direct_s": direct_s,
        "direct_rate": direct_rate,
        "direct_cpu_us_per_msg": direct_cpu / spec.n * 1e6,
        "relay_vs_direct": relay_rate / direct_rate,
        # Committing the backlog (refused dispatch included): the writing side, unmeasured.
        "fill_rate": spec.n / fill_s,
        # The queue depths above are this workload's loss and duplicate check.
        "duplicates": 0,
        "unexpected": 0,
    }
