"""A FIFO between a transport's delivery callback and an endpoint's worker tasks."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class WorkQueue(Generic[T]):
    """Unbounded FIFO for one synchronous producer and many worker tasks.

    Cheaper than ``asyncio.Queue`` on the per-message path (no size bookkeeping, no wake-up
    broadcast): an item is handed straight to the longest-waiting worker. It needs no bound,
    because the broker's prefetch already limits what is delivered and not yet settled.
    """

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Hand ``item`` to a waiting worker, or keep it for the next ``get``."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled worker leaves a done future behind
                waiter.set_result(item)
                return
        self._items.append(item)

    async def get(self) -> T:
        """The oldest item, waiting for one if there is none."""
        if self._items:
            return self._items.popleft()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter
