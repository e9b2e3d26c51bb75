"""Helpers the test suites share: polling with a deadline and reading queues per transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from busline.transports.memory import broker_for

from busline import Envelope


async def eventually(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]],
    timeout: float = 10.0,
    what: str = "condition",
) -> None:
    """Poll ``check`` until it is true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def take_from_queue(url: str, queue: str, count: int, timeout: float = 10.0) -> list[Any]:
    """Remove ``count`` messages from ``queue`` (failing after ``timeout``).

    Returns envelopes for ``memory://`` URLs and aio-pika ``IncomingMessage`` objects (already
    acked) for ``amqp://`` URLs, read with a plain client so busline is not checking itself.
    """
    if url.startswith("memory://"):
        memory_queue = broker_for(url).queue(queue)
        taken: list[Envelope] = []

        def enough() -> bool:
            taken.extend(memory_queue.drain())
            return len(taken) >= count

        await eventually(enough, timeout, f"{count} message(s) in {queue}")
        return taken
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(queue, ensure=True)
        received: list[Any] = []

        async def fetch() -> bool:
            message = await amqp_queue.get(fail=False, no_ack=True)
            if message is not None:
                received.append(message)
            return len(received) >= count

        await eventually(fetch, timeout, f"{count} message(s) in {queue}")
        return received
    finally:
        await connection.close()


def headers_of(message: Any) -> dict[str, Any]:
    """Headers of a message taken with :func:`take_from_queue`, with str values decoded."""
    raw = message.headers
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in dict(raw or {}).items()}


def body_of(message: Any) -> bytes:
    """The body of a message taken with :func:`take_from_queue`."""
    return bytes(message.body)
