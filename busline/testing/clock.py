"""A virtual clock: a real :class:`~busline.clock.Clock` whose time only moves when a test
says so, so delays, retries and saga timeouts run without waiting for real time."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class VirtualTimer:
    """A callback scheduled on a :class:`VirtualClock`."""

    __slots__ = ("callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the callback from running."""
        self.cancelled = True


class VirtualClock:
    """A clock that stands still until :meth:`advance` moves it, running what falls due."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, VirtualTimer]] = []
        self._sequence = itertools.count()

    def now(self) -> float:
        """The virtual time, in seconds since the epoch."""
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> VirtualTimer:
        """Schedule ``callback`` at ``now() + delay`` of virtual time."""
        timer = VirtualTimer(self._now + max(delay, 0.0), callback)
        heapq.heappush(self._timers, (timer.due, next(self._sequence), timer))
        return timer

    @property
    def pending(self) -> int:
        """How many timers wait to fire."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    def advance(self, seconds: float) -> int:
        """Move time forward, running every callback that falls due, in order; return how many
        ran. A callback scheduled while advancing runs too if it falls due in the window."""
        target = self._now + seconds
        ran = 0
        while self._timers and self._timers[0][0] <= target:
            due, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            if not timer.cancelled:
                timer.callback()
                ran += 1
        self._now = target
        return ran
