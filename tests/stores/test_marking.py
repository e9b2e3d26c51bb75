"""Group commit of dispatch marks: marks that arrive while a write runs share the next one."""

from __future__ import annotations

import asyncio

import pytest

from busline.marking import DispatchMarker
from busline.stores import StoreError, open_store
from busline.testing import VirtualClock
from tests.stores.db import count, pending
from tests.stores.test_relay import fill


async def test_concurrent_marks_share_writes_and_mark_every_row(store_url):
    await fill(store_url, "orders", transactions=12, per_transaction=2)
    store = open_store(store_url)
    await store.open()
    writes: list[list[str]] = []
    writing, release = asyncio.Event(), asyncio.Event()
    mark_dispatched = store.mark_dispatched

    async def held(tx_ids: list[str], now: float) -> None:
        writes.append(list(tx_ids))
        writing.set()
        await release.wait()  # the database is slow: marks pile up behind this write
        await mark_dispatched(tx_ids, now)

    store.mark_dispatched = held  # type: ignore[method-assign]
    marker = DispatchMarker(store, VirtualClock(start=5.0))
    try:
        first = asyncio.create_task(marker.mark("t0"))
        await writing.wait()
        rest = [asyncio.create_task(marker.mark(f"t{t}")) for t in range(1, 12)]
        await asyncio.sleep(0)
        assert not any(task.done() for task in [first, *rest])
        release.set()
        await asyncio.gather(first, *rest)
        await marker.close()
    finally:
        await store.close()
    # The first mark was written alone at once; the eleven that came meanwhile share one write.
    assert writes == [["t0"], [f"t{t}" for t in range(1, 12)]]
    assert await pending(store_url) == 0
    assert await count(store_url, "busline_outbox_transactions", "dispatched_at = 5.0") == 12
    assert await count(store_url, "busline_outbox") == 24


async def test_a_failed_write_fails_every_mark_waiting_on_it(store_url):
    store = open_store(store_url)
    await store.open()
    await store.close()  # every write now fails
    marker = DispatchMarker(store, VirtualClock())
    results = await asyncio.gather(
        *(marker.mark(f"t{t}") for t in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, StoreError) for result in results), results
    with pytest.raises(StoreError):
        await marker.mark("t9")  # and the marker still takes new marks
