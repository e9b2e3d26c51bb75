"""The relay sends many transactions at once: up to ``relay_window`` messages in flight, each
transaction's own messages still in order; failures are recorded per transaction; and the
background relay claims ahead while it sends, oldest transactions first, without ever holding
more than ``OPEN_CLAIMS`` claims."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from busline import StoreSettings
from busline.relay import OPEN_CLAIMS, Relay
from busline.stores import OutboxRow, Store, open_store
from busline.testing import VirtualClock
from tests.stores.test_relay import fill
from tests.support import eventually


class InFlight:
    """A broker whose confirms take a few loop passes; records order and concurrency."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.sent: dict[str, list[int]] = defaultdict(list)
        self.started: list[str] = []

    async def send(self, row: OutboxRow) -> None:
        if row.position == 0:
            self.started.append(row.tx_id)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            for _ in range(3):  # other sends start meanwhile, as they would on a real channel
                await asyncio.sleep(0)
        finally:
            self.now -= 1
        self.sent[row.tx_id].append(row.position)


async def test_a_round_keeps_the_window_full_and_each_transaction_in_order(store_url):
    await fill(store_url, "orders", transactions=20, per_transaction=3)
    store = open_store(store_url)
    await store.open()
    broker = InFlight()
    relay = Relay("orders", store, broker.send, VirtualClock(), StoreSettings(relay_window=4))
    try:
        assert await relay.run_once() == 60
        stats = await store.stats()
    finally:
        await store.close()
    assert broker.most == 4, "the round did not use (or overran) its window"
    assert len(broker.sent) == 20
    assert all(positions == [0, 1, 2] for positions in broker.sent.values()), broker.sent
    assert (stats.pending, stats.dispatched) == (0, 60)


async def test_every_failure_in_a_round_is_noted_on_its_own_row(store_url):
    await fill(store_url, "orders", transactions=3, per_transaction=2)
    clock = VirtualClock(start=1.0)
    settings = StoreSettings(relay_interval=1.0)
    store = open_store(store_url, settings)
    await store.open()
    gate = asyncio.Event()
    started = 0
    failing = {"t0", "t2"}  # their first message fails once

    async def send(row: OutboxRow) -> None:
        nonlocal started
        started += 1
        if started == 3:
            gate.set()
        await gate.wait()  # all three heads are in flight before any of them fails
        if row.tx_id in failing:
            failing.discard(row.tx_id)
            raise ConnectionError(f"lost the confirm of {row.tx_id}")

    relay = Relay("orders", store, send, clock, settings)
    try:
        # t1/0 went through; t0/0 and t2/0 failed, and nothing new started after a failure.
        assert await relay.run_once() == 1
        stats = await store.stats()
        assert (stats.pending, stats.failing, stats.dispatched) == (5, 2, 1)
        assert await relay.run_once() == 1  # t1/1; t0 and t2 back off for a second
        assert await relay.run_once() == 0
        clock.advance(1.0)
        assert await relay.run_once() == 4
    finally:
        await store.close()


class CountingStore:
    """A store whose claims are counted while open (the relay's rounds)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.open_claims = 0
        self.most_open = 0

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def claim(self, *args):
        inner = self._store.claim(*args)
        counter = self

        class Counted:
            async def __aenter__(self):
                counter.open_claims += 1
                counter.most_open = max(counter.most_open, counter.open_claims)
                return await inner.__aenter__()

            async def __aexit__(self, *exc):
                try:
                    return await inner.__aexit__(*exc)
                finally:
                    counter.open_claims -= 1

        return Counted()


async def test_the_background_relay_claims_ahead_and_sends_oldest_first(store_url):
    await fill(store_url, "orders", transactions=40, per_transaction=2)
    settings = StoreSettings(relay_batch=4, relay_interval=0.02)
    store = open_store(store_url, settings)
    await store.open()
    counting = CountingStore(store)
    broker = InFlight()
    relay = Relay("orders", counting, broker.send, VirtualClock(), settings)  # type: ignore[arg-type]
    relay.start()
    try:

        async def drained() -> bool:
            return (await store.stats()).pending == 0

        await eventually(drained, what="the backlog drained")
    finally:
        await relay.stop()
        await store.close()
    # How many claims overlap depends on how fast the store answers; at least one ahead of the
    # one sending, never more than the cap.
    assert 2 <= counting.most_open <= OPEN_CLAIMS, "no claim ahead, or too many claims open"
    # Transactions started in the order they were committed, across rounds.
    assert broker.started == [f"t{t}" for t in range(40)]
    assert sum(map(len, broker.sent.values())) == 80
    assert all(positions == [0, 1] for positions in broker.sent.values())
