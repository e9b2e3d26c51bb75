"""The error queue of an in-process broker (see :mod:`busline.errorqueue`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from busline.envelope import Envelope
from busline.errorqueue import ParkedMessage, replay_headers, select

from .memory_broker import MemoryBroker, open_broker, release_broker


class MemoryErrorQueue:
    """The :class:`~busline.errorqueue.ErrorQueue` of an in-process broker."""

    def __init__(self, broker: MemoryBroker, error_queue: str) -> None:
        self._broker = broker
        self._queue = broker.queue(error_queue)
        self._released = False

    @classmethod
    async def open(cls, url: str, error_queue: str) -> MemoryErrorQueue:
        """Attach to the broker of ``url`` (which stays while this is open)."""
        return cls(open_broker(url), error_queue)

    async def browse(self, limit: int | None = None) -> list[ParkedMessage]:
        """The parked messages, oldest first, left in place."""
        parked = [_parked(envelope) for envelope, _ in self._queue.ready]
        return parked if limit is None else parked[:limit]

    async def replay(self, message_ids: Iterable[str] | None = None) -> list[str]:
        """Move the selected messages back to their original queues with fresh counters."""
        chosen = select(await self.browse(), message_ids)
        replayed: list[str] = []
        keep: deque[tuple[Envelope, bool]] = deque()
        for envelope, redelivered in self._queue.ready:
            if envelope.message_id in chosen:
                fresh = envelope.copy()
                fresh.headers = {}
                target = _parked(envelope).original_queue
                self._broker.queue(target).put(fresh.with_headers(replay_headers(envelope.headers)))
                replayed.append(envelope.message_id)
            else:
                keep.append((envelope, redelivered))
        self._queue.ready = keep
        # Messages left the error queue: if a bus consumes it, join() may be waiting on them.
        self._queue.quiet.changed()
        return replayed

    async def purge(self) -> int:
        """Delete every parked message."""
        return len(self._queue.drain())

    async def close(self) -> None:
        """Let go of the broker: dropped if nothing else uses it and it holds no messages."""
        if not self._released:
            self._released = True
            release_broker(self._broker)


def _parked(envelope: Envelope) -> ParkedMessage:
    return ParkedMessage(
        envelope.message_id, envelope.message_type, envelope.body, dict(envelope.headers)
    )
