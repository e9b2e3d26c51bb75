"""Background work the transport starts without awaiting it at once, and awaits on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("busline.rabbitmq")


class BackgroundTasks:
    """Tasks owned by one transport (e.g. closing a consumer channel that was replaced).

    asyncio keeps only weak references to tasks, so they are held here until done; on close
    the transport waits for them a little, then cancels what is left, so nothing outlives it.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coroutine`` in a task held until it is done."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("background task %s failed: %r", task.get_name(), task.exception())

    async def close(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the tasks, then cancel the rest."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
