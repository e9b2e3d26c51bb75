"""Marking sent outbox rows dispatched, many transactions per database write (group commit).

After a committed transaction's messages are confirmed, its rows must be marked dispatched before
the incoming message is acknowledged, or the relay sends them again after the lease. One write
(and, on SQLite, one fsync) per transaction would double a handler's database cost, so marks that
arrive while a write is under way wait for the next one, which takes all of them at once. A lone
handler still gets its own write at once: nothing waits for a batch to fill.
"""

from __future__ import annotations

import asyncio
import contextlib

from busline.clock import Clock
from busline.stores import Store


class DispatchMarker:
    """Batches :meth:`Store.mark_dispatched` calls; one write runs at a time.

    Args:
        store: The open store.
        clock: The bus's clock (``dispatched_at`` is read from it).
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def mark(self, tx_id: str) -> None:
        """Mark every row of committed transaction ``tx_id`` dispatched; return once that is
        committed. Raises what the store raised (the relay then sends the rows again later)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((tx_id, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="busline:outbox-marks")
        await future

    async def _write(self) -> None:
        batch: list[tuple[str, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                tx_ids = [tx_id for tx_id, _ in batch]
                try:
                    await self._store.mark_dispatched(tx_ids, self._clock.now())
                except Exception as exc:
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
        except BaseException:  # cancelled: nobody may wait for a write that will not come
            _settle(batch + self._waiting, asyncio.CancelledError("outbox marking stopped"))
            self._waiting = []
            raise

    async def close(self) -> None:
        """Wait for the write under way (marks still waiting are written first)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await writer


def _settle(batch: list[tuple[str, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():  # its caller gave up waiting
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
