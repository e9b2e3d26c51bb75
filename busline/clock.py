"""Time as the bus sees it, so tests can drive delays with a virtual clock instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can still be cancelled."""

    def cancel(self) -> None:
        """Stop the callback from running."""


class Clock(Protocol):
    """Wall-clock time and timers."""

    def now(self) -> float:
        """Seconds since the epoch."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once ``delay`` seconds have passed."""


class SystemClock:
    """The real clock: ``time.time`` and the running event loop's timers."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Schedule ``callback`` on the running loop."""
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback)
