"""Isolated in-process brokers, and waiting until they are quiet (see docs/testing.md)."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from busline.bus import Bus


def memory_url(prefix: str = "test") -> str:
    """A ``memory://`` URL naming a fresh, unshared in-process broker."""
    return f"memory://{prefix}-{uuid.uuid4().hex[:12]}"


class _Quiet(Protocol):
    """What :func:`join` uses of the memory transport's quiescence watch."""

    def busy(self) -> list[str]: ...

    async def wait(self) -> None: ...


async def join(target: str | Bus, timeout: float | None = 10.0) -> None:  # noqa: ASYNC109
    """Wait until an in-process broker is quiet: every message in flight, and every message
    those caused, handled or parked (what Dramatiq's ``broker.join()`` does).

    ``target`` is a ``memory://`` URL or a bus using one; every bus on that broker counts. Quiet
    means no delivery awaits settlement and no queue with a consumer holds a ready message.
    Since busline acknowledges a message only after the handler's own messages were sent, a
    chain of handlers is waited for to its end; the wait is event-driven, nothing polls.

    Not waited for: messages in queues nobody consumes (the error queue, a command whose
    handler's bus is not running, so start the buses first), delayed retries (the test fires
    them with :meth:`VirtualClock.advance`, then joins again), and outbox rows left to the
    relay after a failed send (they are in the database, not the broker).

    Args:
        target: A ``memory://`` URL, or a :class:`~busline.Bus` on one.
        timeout: Seconds to wait at most; ``None`` waits as long as it takes. (A parameter
            rather than an outer :func:`asyncio.timeout` so the error can say what is busy.)

    Raises:
        TimeoutError: Still busy after ``timeout``; the message names the busy queues.
        ValueError: ``target`` is not an in-process broker (RabbitMQ has no such notion).
    """
    url = target if isinstance(target, str) else target.url
    if urlsplit(url).scheme != "memory":
        raise ValueError(f"join() waits for memory:// brokers only, not {url.split(':', 1)[0]}://")
    # Loaded by name, as busline.schemes loads transports: importing busline.testing loads no
    # transport, and mypy checks transports/ as a package of its own, so it could not follow
    # a "busline.transports" import.
    memory = importlib.import_module("busline.transports.memory")
    quiet: _Quiet | None = memory.quiescence(url)
    if quiet is None:  # no such broker: it holds nothing
        return
    try:
        async with asyncio.timeout(timeout):
            await quiet.wait()
    except TimeoutError:
        busy = ", ".join(quiet.busy()) or "nothing any more"
        raise TimeoutError(f"{url} still busy after {timeout}s; in flight: {busy}") from None
