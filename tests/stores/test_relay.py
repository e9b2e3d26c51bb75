"""The relay: several at once never send a row twice, per-transaction order holds, failures back
off without blocking other transactions."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

from busline import Context, Envelope, Middleware, StoreSettings
from busline.envelope import new_message_id
from busline.messages import MessageKind
from busline.relay import Relay
from busline.stores import OutboxRow, open_store
from busline.stores.rows import outbox_values, transaction_values
from busline.testing import VirtualClock
from tests.stores.db import pending
from tests.stores.messages import Step
from tests.support import eventually


async def fill(store_url: str, source: str, transactions: int, per_transaction: int) -> None:
    """Commit ``transactions`` outbox transactions of Step messages, due now."""
    store = open_store(store_url)
    await store.open()
    try:
        for t in range(transactions):
            async with store.transaction() as tx:
                rows = []
                for seq in range(per_transaction):
                    message_id = new_message_id()
                    body = f'{{"batch":"t{t}","seq":{seq}}}'.encode()
                    envelope = Envelope(
                        message_id, "stores.Step", body, message_id, message_id, source=source
                    )
                    rows.append(
                        outbox_values(
                            f"t{t}", seq, MessageKind.COMMAND, "stores.Step", envelope, 0.0
                        )
                    )
                await tx.add_outbox(
                    transaction_values(f"t{t}", source, per_transaction, 0.0, 0.0), rows
                )
    finally:
        await store.close()


async def test_two_relays_at_once_send_every_row_once_in_order(store_url):
    await fill(store_url, "orders", transactions=30, per_transaction=3)
    settings = StoreSettings(relay_batch=3)
    sent: list[tuple[str, OutboxRow]] = []
    stores = [open_store(store_url, settings) for _ in range(2)]
    for store in stores:
        await store.open()

    def sender(name: str):
        async def send(row: OutboxRow) -> None:
            await asyncio.sleep(0.001)  # a broker round trip, so the two relays overlap
            sent.append((name, row))

        return send

    relays = [
        Relay("orders", store, sender(f"r{i}"), VirtualClock(), settings)
        for i, store in enumerate(stores)
    ]

    async def drain(relay: Relay) -> None:
        while await relay.run_once():
            pass

    try:
        await asyncio.gather(*(drain(relay) for relay in relays), drain(relays[0]))
    finally:
        for store in stores:
            await store.close()

    ids = Counter(row.id for _, row in sent)
    assert len(ids) == 90 and set(ids.values()) == {1}, "a row was sent twice or not at all"
    by_transaction: dict[str, list[int]] = defaultdict(list)
    for _, row in sent:
        by_transaction[row.tx_id].append(row.position)
    assert all(positions == [0, 1, 2] for positions in by_transaction.values())
    assert {name for name, _ in sent} == {"r0", "r1"}, "one relay did all the work"
    assert await pending(store_url) == 0


async def test_a_failing_row_backs_off_and_holds_back_only_its_transaction(store_url):
    await fill(store_url, "orders", transactions=2, per_transaction=2)
    clock = VirtualClock(start=1.0)
    settings = StoreSettings(relay_interval=1.0, relay_max_backoff=4.0)
    store = open_store(store_url, settings)
    await store.open()
    sent: list[tuple[str, int]] = []
    failures = {("t0", 0): 2}  # t0's first message fails twice

    async def send(row: OutboxRow) -> None:
        key = (row.tx_id, row.position)
        if failures.get(key, 0) > 0:
            failures[key] -= 1
            raise ConnectionError("broker unreachable")
        sent.append(key)

    relay = Relay("orders", store, send, clock, settings)
    try:
        assert await relay.run_once() == 0  # t0/0 fails: retry in 1 s
        assert relay.last_error == "ConnectionError: broker unreachable"
        assert await relay.run_once() == 2  # t1 goes ahead; t0/1 waits behind t0/0
        assert await relay.run_once() == 0
        clock.advance(1.0)
        assert await relay.run_once() == 0  # fails again: retry in 2 s
        clock.advance(1.0)
        assert await relay.run_once() == 0  # not due yet
        clock.advance(1.0)
        assert await relay.run_once() == 2
        assert relay.last_error is None
        stats = await store.stats()
    finally:
        await store.close()
    assert sent == [("t1", 0), ("t1", 1), ("t0", 0), ("t0", 1)]
    assert (stats.pending, stats.failing, stats.dispatched) == (0, 0, 4)


async def test_a_relay_sends_only_its_own_services_messages(store_url):
    await fill(store_url, "shipping", transactions=1, per_transaction=1)
    store = open_store(store_url)
    await store.open()
    sent: list[OutboxRow] = []

    async def send(row: OutboxRow) -> None:
        sent.append(row)

    try:
        assert await Relay("orders", store, send, VirtualClock(), StoreSettings()).run_once() == 0
        assert await Relay("shipping", store, send, VirtualClock(), StoreSettings()).run_once() == 1
    finally:
        await store.close()
    assert sent[0].envelope.source == "shipping"


class BothSending(Middleware):
    """Holds each bus's first publish until the other bus publishes too, so that two relays
    really work on one backlog at once (neither drains it before the other starts); counts what
    this bus sent."""

    def __init__(self, arrived: list[BothSending], everyone: asyncio.Event) -> None:
        self.sent = 0
        self._arrived = arrived
        self._everyone = everyone

    async def on_publish(self, out, call_next):
        if self not in self._arrived:
            self._arrived.append(self)
            if len(self._arrived) == 2:
                self._everyone.set()
        await self._everyone.wait()
        await call_next(out)
        self.sent += 1


async def test_two_bus_instances_relay_a_backlog_each_message_once(make_store_bus, tables):
    # The backlog: 20 transactions of 3 steps, committed while the broker was unreachable.
    producer = make_store_bus("orders", outage_switch=True)
    async with producer:
        producer.transport.down = True
        for t in range(20):
            async with producer.transaction() as tx:
                for seq in range(3):
                    await tx.send(Step(batch=f"t{t}", seq=seq))
    assert await pending(tables) == 60

    settings = StoreSettings(relay_interval=0.02, relay_max_backoff=0.1, relay_batch=2)
    arrived: list[BothSending] = []
    everyone = asyncio.Event()
    gates = [BothSending(arrived, everyone), BothSending(arrived, everyone)]
    instances = [
        make_store_bus("orders", middleware=[gate], store_settings=settings) for gate in gates
    ]
    worker = make_store_bus("workers", outage_switch=True)
    handled: dict[str, list[int]] = defaultdict(list)

    @worker.command_handler(prefetch=1)
    async def step(cmd: Step, ctx: Context) -> None:
        handled[cmd.batch].append(cmd.seq)

    await worker.start()
    await asyncio.gather(*(bus.start() for bus in instances))
    await eventually(lambda: sum(map(len, handled.values())) >= 60, what="all 60 steps handled")

    async def drained() -> bool:
        return await pending(tables) == 0

    await eventually(drained, what="every row marked dispatched")
    assert set(worker.transport.delivered.values()) == {1}, "a message was delivered twice"
    assert len(worker.transport.delivered) == 60
    assert all(seqs == [0, 1, 2] for seqs in handled.values()), handled
    assert all(gate.sent > 0 for gate in gates), "one instance did all the work"
