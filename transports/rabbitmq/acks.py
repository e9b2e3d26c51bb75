"""Acknowledging deliveries in batches, never before each one was settled.

Handlers finish in any order, but ``basic.ack(multiple=True)`` covers every lower delivery tag on
the channel. So the tracker only ever sends a multiple ack for the highest tag whose every lower
tag is settled too: one frame then settles a whole run of messages. A slow handler would hold
such a run back (and with it the prefetch window), so once enough settled messages wait behind
a gap, they are acknowledged one by one instead. Frames go out from one task per channel, which
wakes when something was settled; everything settled meanwhile shares its next frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from . import amqp

log = logging.getLogger("busline.rabbitmq")

# A requeued (nacked) tag, a tag acked on its own, or a multiple ack up to a tag.
_NACK, _SINGLE, _MULTIPLE = 0, 1, 2

#: Errors meaning the channel is gone: its deliveries come back from the broker anyway.
CHANNEL_GONE: tuple[type[BaseException], ...] = (
    amqp.AMQPError,
    ConnectionError,
    RuntimeError,
)


class AckTracker:
    """Settlement state of one consumer channel and the task that sends its acks."""

    __slots__ = (
        "_channel",
        "_nacks",
        "_outstanding",
        "_settled",
        "_stopping",
        "_straggler_limit",
        "_task",
        "_wake",
        "alive",
        "name",
    )

    def __init__(self, channel: amqp.Channel, prefetch: int, name: str) -> None:
        self._channel = channel
        self.name = name
        #: Tags the broker counts as unacknowledged, oldest first (at most ``prefetch`` or so:
        #: the broker sends no more until some are acked).
        self._outstanding: deque[int] = deque()
        #: Of those, the ones the dispatcher settled, waiting for their ack to be sent.
        self._settled: set[int] = set()
        self._nacks: list[int] = []
        self._straggler_limit = max(1, prefetch // 2)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        #: False once the channel is gone; settling is then a no-op (the broker redelivers).
        self.alive = True

    def start(self) -> None:
        """Start the task that sends acknowledgements."""
        self._task = asyncio.create_task(self._run(), name=f"busline:acks:{self.name}")

    def delivered(self, tag: int) -> None:
        """Record a delivery (tags arrive in increasing order on a channel)."""
        self._outstanding.append(tag)

    def ack(self, tag: int) -> bool:
        """Settle ``tag`` as processed; ``False`` if the channel is gone."""
        if not self.alive:
            return False
        self._settled.add(tag)
        self._wake.set()
        return True

    def requeue(self, tag: int) -> bool:
        """Give ``tag`` back to the broker for redelivery; ``False`` if the channel is gone."""
        if not self.alive:
            return False
        self._nacks.append(tag)
        self._wake.set()
        return True

    def pending(self) -> int:
        """Deliveries not yet acknowledged to the broker (settled or not)."""
        return len(self._outstanding)

    def take_frames(self, final: bool = False) -> list[tuple[int, int]]:
        """The frames to send now, as ``(tag, kind)``, and forget their tags. ``final``: the
        channel is about to close, so every settled message is acked, however few wait behind
        a gap (the unsettled ones go back to the queue with the channel)."""
        outstanding, settled = self._outstanding, self._settled
        frames = []
        for tag in self._nacks:
            if tag in outstanding:  # always, unless a caller settles a tag twice
                outstanding.remove(tag)
                frames.append((tag, _NACK))
        self._nacks.clear()
        target = 0
        while outstanding and outstanding[0] in settled:
            target = outstanding.popleft()
            settled.remove(target)
        if target:
            # Covers every tag below it that the broker still counts, and those are all
            # settled: anything acked or nacked on its own was removed above (naming a tag the
            # broker no longer knows would close the channel).
            frames.append((target, _MULTIPLE))
        if settled and len(settled) >= (1 if final else self._straggler_limit):
            for tag in sorted(settled):
                if tag in outstanding:
                    outstanding.remove(tag)
                    frames.append((tag, _SINGLE))
            settled.clear()
        return frames

    async def _run(self) -> None:
        channel = self._channel
        wake = self._wake
        try:
            while True:
                await wake.wait()
                wake.clear()
                # Frames leave in the order written: nacks, then acks, so a requeued tag is
                # never swallowed by a later multiple ack.
                for tag, kind in self.take_frames(final=self._stopping):
                    if kind == _NACK:
                        channel.nack(tag, multiple=False, requeue=True)
                    else:
                        channel.ack(tag, multiple=kind == _MULTIPLE)
                if self._stopping and not wake.is_set():
                    return
        except CHANNEL_GONE as exc:
            self.alive = False
            log.debug(
                "%s: channel gone, %d unacked message(s) return to the queue: %r",
                self.name,
                self.pending(),
                exc,
            )

    async def flush_and_stop(self) -> None:
        """Send every acknowledgement still due, then stop the task."""
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        self.alive = False

    def kill(self) -> None:
        """The channel is gone: stop at once; later settlements are no-ops."""
        self.alive = False
        if self._task is not None:
            self._task.cancel()
