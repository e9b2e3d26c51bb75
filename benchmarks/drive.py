"""The two ways the suite sends: as fast as a window allows, and on a fixed timetable.

Both keep at most ``window`` sends in flight by running ``window`` sender coroutines that each
await their send (and so its publisher confirm) before taking the next sequence number. That is an
``asyncio.Semaphore(window)`` without a task per message: the driver's own cost is the same for
every system and small, so it does not blur the difference between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter

Send = Callable[[int, float], Awaitable[None]]


async def drive_window(send: Send, first: int, count: int, window: int) -> float:
    """Send ``first .. first+count-1`` with at most ``window`` sends in flight.

    Returns the mean duration of one send call in seconds: for the broker systems, mostly the
    wait for the publisher confirm, which shows whether the broker or the client is the brake.
    """
    numbers = iter(range(first, first + count))
    busy = 0.0

    async def sender() -> None:
        nonlocal busy
        # All senders share one iterator: each number is taken exactly once, in order.
        for seq in numbers:
            began = perf_counter()
            await send(seq, began)
            busy += perf_counter() - began

    await asyncio.gather(*(sender() for _ in range(max(1, min(window, count)))))
    return busy / count


@dataclass(frozen=True)
class PacedRun:
    """How well the sender kept to its timetable."""

    first_send: float
    last_send: float
    #: How late each send started against its slot, seconds (a system that cannot keep up, or
    #: a full window, makes sends late; latencies are measured from the actual send).
    lateness: list[float]
    #: How long each send call took, seconds: for the broker systems, the publisher confirm.
    durations: list[float]


async def drive_paced(send: Send, first: int, count: int, rate: float, window: int) -> PacedRun:
    """Send ``count`` messages, message ``i`` at ``start + i / rate``, at most ``window`` in
    flight at once."""
    numbers = iter(range(count))
    lateness: list[float] = []
    durations: list[float] = []
    start = perf_counter() + 0.01  # a slot for the first send that every sender can still meet
    last_send = start

    async def sender() -> None:
        nonlocal last_send
        for i in numbers:
            slot = start + i / rate
            delay = slot - perf_counter()
            if delay > 0:
                # Pacing, not synchronisation: the timetable is the thing being measured against.
                await asyncio.sleep(delay)
            now = perf_counter()
            lateness.append(now - slot)
            last_send = max(last_send, now)
            await send(first + i, now)
            durations.append(perf_counter() - now)

    await asyncio.gather(*(sender() for _ in range(max(1, min(window, count)))))
    return PacedRun(start, last_send, lateness, durations)
