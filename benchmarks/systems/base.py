"""The small interface every benchmarked system implements.

The workloads drive systems only through it, so the sending loop, the pacing, the bookkeeping
and the clock are one shared piece of code and differ between systems not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from benchmarks.spec import Topology

#: ``on_message(subscriber_index, seq, sent_at)``, called by a handler for each delivery.
OnMessage = Callable[[int, int, float], None]


class System(Protocol):
    """A messaging client set up to send to and consume from one :class:`Topology`."""

    async def start(self, topology: Topology, on_message: OnMessage) -> None:
        """Connect, declare the topology and start the consumers (before the clock starts)."""

    async def send(self, seq: int, sent_at: float) -> None:
        """Send one payload (a command, or an event for the fan-out workload); return once the
        broker confirmed it."""

    async def stop(self) -> None:
        """Stop consuming, settle what was received and disconnect."""
