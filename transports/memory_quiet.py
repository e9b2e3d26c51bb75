"""When an in-process broker is quiet: what :func:`busline.testing.join` waits for.

Quiet means that no delivery awaits settlement and that no queue with a consumer holds a ready
message. The buses on the broker cannot leave that state by themselves: busline settles a delivery
only after the handler's outgoing messages were put on their queues, so a message a handler causes
is counted before its cause stops being counted, and the count never passes through zero while
work remains. Only something outside the buses makes a quiet broker busy again: the test sending,
a clock firing a delayed retry, the outbox relay sending what a failed send left behind.

Not counted, because waiting for them could last forever: ready messages in a queue nobody
consumes (the error queue, a command whose handler is not running), and messages deferred on the
clock (a test's :class:`~busline.testing.VirtualClock` fires them when the test advances it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sized
from typing import Protocol


class WatchedQueue(Protocol):
    """What the watch reads of a queue (the broker's ``MemoryQueue``)."""

    @property
    def name(self) -> str:
        """The queue's name."""

    @property
    def unsettled(self) -> int:
        """Deliveries handed out and not settled yet."""

    @property
    def ready(self) -> Sized:
        """Messages waiting for a consumer."""

    @property
    def consumers(self) -> Sized:
        """Its consumers."""


class Quiescence:
    """Wakes whoever waits for one broker to go quiet, when it does.

    Event-driven: the broker calls :meth:`changed` at each event that can end the work in flight
    (a delivery settled or handed back, a consumer gone, ready messages removed). Nothing polls.

    Args:
        queues: The broker's queues by name (the live dict, not a copy).
    """

    __slots__ = ("_queues", "waiters")

    def __init__(self, queues: Mapping[str, WatchedQueue]) -> None:
        self._queues = queues
        #: Futures of join() calls waiting for quiet (empty outside tests).
        self.waiters: list[asyncio.Future[None]] = []

    def is_quiet(self) -> bool:
        """Whether nothing is in flight: see the module's docstring."""
        return not any(
            queue.unsettled or (queue.ready and queue.consumers) for queue in self._queues.values()
        )

    def busy(self) -> list[str]:
        """The queues that keep the broker busy, each with what it holds in flight."""
        found: list[str] = []
        for queue in self._queues.values():
            ready = len(queue.ready) if queue.consumers else 0
            if queue.unsettled or ready:
                found.append(f"{queue.name} ({queue.unsettled} unsettled, {ready} ready)")
        return found

    def changed(self) -> None:
        """The broker may have gone quiet: if it has, wake every waiter.

        It sits on the settlement path of every delivery, so with nobody waiting (outside
        tests, always) it costs one truth test and never scans the queues.
        """
        if self.waiters and self.is_quiet():
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self) -> None:
        """Return once the broker is quiet (at once if it is). Bound it with
        :func:`asyncio.timeout`; :meth:`busy` then says what was still in flight."""
        loop = asyncio.get_running_loop()
        # Checked again on every wake-up: between the wake-up and this task running, the test's
        # other tasks may have sent something, and "quiet" must hold when join returns.
        while not self.is_quiet():
            waiter: asyncio.Future[None] = loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                # A timed-out (cancelled) wait must not leave its future behind.
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
