"""The in-process baseline: a bare bounded ``asyncio.Queue`` handing the payload dicts to 8 worker
tasks in the same process. No envelope, no encoding, no middleware, no settlement: what moving a
message from a sender to a handler costs in asyncio itself, the 1.00 of the ``memory`` workload's
ratios (issue 16)."""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.payload import payload_fields
from benchmarks.spec import Topology
from benchmarks.systems.base import OnMessage

#: Worker tasks taking from the queue.
WORKERS = 8


class AsyncioQueue:
    """``send`` puts the payload dict on a queue bounded at the prefetch; workers take it and
    report it to the tracker, as busline's handler does."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[dict[str, Any] | None] | None = None
        self._workers: list[asyncio.Task[None]] = []

    async def start(self, topology: Topology, on_message: OnMessage) -> None:
        """The queue and its workers."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=topology.prefetch)
        self._queue = queue

        async def work() -> None:
            while (item := await queue.get()) is not None:
                on_message(0, item["seq"], item["sent_at"])

        self._workers = [asyncio.create_task(work()) for _ in range(WORKERS)]

    async def send(self, seq: int, sent_at: float) -> None:
        """Put one payload dict on the queue (waits while it is full)."""
        assert self._queue is not None, "start() first"
        await self._queue.put(payload_fields(seq, sent_at))

    async def stop(self) -> None:
        """One sentinel per worker after what is queued, then wait for them."""
        if self._queue is not None:
            for _ in self._workers:
                await self._queue.put(None)
            await asyncio.gather(*self._workers)
        self._workers = []
