"""The message every system sends, and the :class:`Tracker` that every handler reports to.

The payload is a ~100-byte JSON object. It carries its sequence number (to detect loss and
duplicates) and ``sent_at``, the sender's ``time.perf_counter()`` when the send call began, so
a handler in the same process can compute send-to-handler latency with one clock.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

SKU = "SKU-4711"
QUANTITY = 3
CURRENCY = "EUR"

#: The payload's fields and types, declared once: each system builds its own typed message
#: from this (a msgspec struct for busline, a pydantic model for FastStream).
PAYLOAD_FIELDS: dict[str, type] = {
    "seq": int,
    "sent_at": float,
    "order_id": str,
    "sku": str,
    "quantity": int,
    "currency": str,
}


def payload_fields(seq: int, sent_at: float) -> dict[str, Any]:
    """The payload as a dict: serialised as it is (plain aio-pika) or as a typed message's
    keyword arguments (busline, FastStream)."""
    return {
        "seq": seq,
        "sent_at": sent_at,
        "order_id": f"order-{seq:08d}",
        "sku": SKU,
        "quantity": QUANTITY,
        "currency": CURRENCY,
    }


class Tracker:
    """Counts deliveries per subscriber, records latencies, resolves when a phase is complete.

    Handlers of every system call :meth:`on_message` with the same cost, so its overhead does not
    tilt the comparison. A phase expects sequence numbers ``base .. base+count-1`` on each of
    ``subscribers`` subscribers; duplicates are counted and not treated as progress.
    """

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.base = 0
        self.remaining = 0
        self.duplicates = 0
        self.unexpected = 0
        self.latencies: list[float] | None = None
        self._seen: list[bytearray] = []
        self._done: asyncio.Future[float] | None = None

    def expect(self, base: int, count: int, *, record_latency: bool = False) -> None:
        """Start a phase of ``count`` messages per subscriber, numbered from ``base``."""
        if count < 1:
            raise ValueError("a phase needs at least one message")
        self.base = base
        self.remaining = count * self.subscribers
        self._seen = [bytearray(count) for _ in range(self.subscribers)]
        self.latencies = [] if record_latency else None
        self._done = asyncio.get_running_loop().create_future()

    def on_message(self, subscriber: int, seq: int, sent_at: float) -> None:
        """A handler ran for message ``seq`` on ``subscriber``; called inside the handler."""
        now = perf_counter()
        index = seq - self.base
        seen = self._seen[subscriber]
        if not 0 <= index < len(seen):
            # A message from outside the phase: only a redelivery of an earlier phase can do it.
            self.unexpected += 1
            return
        if seen[index]:
            self.duplicates += 1
            return
        seen[index] = 1
        if self.latencies is not None:
            self.latencies.append(now - sent_at)
        self.remaining -= 1
        if self.remaining == 0 and self._done is not None and not self._done.done():
            self._done.set_result(now)

    async def wait(self, within: float) -> float:
        """Wait, at most ``within`` seconds, until the phase is complete.

        Returns the ``perf_counter()`` of the phase's last delivery.
        """
        if self._done is None:
            raise RuntimeError("expect() a phase before waiting for it")
        try:
            async with asyncio.timeout(within):
                return await asyncio.shield(self._done)
        except TimeoutError:
            raise TimeoutError(
                f"timed out after {within:.0f}s with {self.remaining} deliveries outstanding "
                f"({self.duplicates} duplicates, {self.unexpected} unexpected)"
            ) from None
