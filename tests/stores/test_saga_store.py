"""The saga persistence of both stores: instances under optimistic concurrency, their steps,
scheduled outbox messages (timeouts) and the migration that brings them, on real databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from busline import Envelope, StoreSettings
from busline.envelope import new_message_id
from busline.messages import MessageKind
from busline.stores import Store, open_store
from busline.stores.rows import outbox_values, transaction_values
from busline.stores.sagas import SagaRecord, SagaStep, prefix_bounds
from busline.stores.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    VERSION_TABLE_POSTGRES,
    VERSION_TABLE_SQLITE,
)
from busline.stores.sql import INSERT_OUTBOX, INSERT_TRANSACTION
from tests.stores.db import Db, count, query
from tests.support import eventually

SAGA = "shop.fulfilment"


@asynccontextmanager
async def opened(
    url: str, settings: StoreSettings | None = None, migrate: bool = True
) -> AsyncIterator[Store]:
    store = open_store(url, settings or StoreSettings())
    await store.open(migrate=migrate)
    try:
        yield store
    finally:
        await store.close()


def record(key: str, *, saga: str = SAGA, status: str = "running", at: float = 1.0) -> SagaRecord:
    return SagaRecord(
        saga=saga,
        key=key,
        state=json.dumps({"n": 0}).encode(),
        version=1,
        status=status,
        compensations=b"[]",
        created_at=at,
        updated_at=at,
    )


def counter(saga: SagaRecord) -> int:
    return int(json.loads(saga.state)["n"])


def message(tx_id: str, position: int = 0, source: str = "orders") -> tuple[Any, ...]:
    """An outbox row of a Timeout command, as the bus writes it."""
    message_id = new_message_id()
    envelope = Envelope(message_id, "shop.Timeout", b"{}", message_id, message_id, source=source)
    return outbox_values(tx_id, position, MessageKind.COMMAND, "shop.Timeout", envelope, 0.0)


async def schedule(store: Store, tx_id: str, key: str, due_at: float, messages: int = 1) -> None:
    """Commit a scheduled outbox transaction of ``messages`` Timeout commands."""
    async with store.transaction() as tx:
        await tx.add_outbox(
            transaction_values(tx_id, "orders", messages, 0.0, due_at),
            [message(tx_id, position) for position in range(messages)],
            schedule_key=key,
        )


async def test_insert_load_update_delete_check_the_version(store_url):
    async with opened(store_url) as store:
        async with store.transaction() as tx:
            assert await tx.load_saga(SAGA, "o-1") is None
            assert await tx.insert_saga(record("o-1"))
        async with store.transaction() as tx:
            loaded = await tx.load_saga(SAGA, "o-1")
            assert loaded == record("o-1")
            loaded.state, loaded.status, loaded.updated_at = b'{"n": 1}', "compensating", 2.0
            loaded.compensations = b'[{"undo": 1}]'
            assert await tx.update_saga(loaded, expected_version=1)
            assert loaded.version == 2
        async with store.transaction() as tx:
            stale = record("o-1", status="completed")
            assert not await tx.update_saga(stale, expected_version=1)
            assert stale.version == 1
            assert not await tx.delete_saga(SAGA, "o-1", expected_version=1)
        async with store.transaction() as tx:
            current = await tx.load_saga(SAGA, "o-1")
        assert current is not None
        assert (current.version, current.state, current.status) == (2, b'{"n": 1}', "compensating")
        assert (current.compensations, current.created_at, current.updated_at) == (
            b'[{"undo": 1}]',
            1.0,
            2.0,
        )
        async with store.transaction() as tx:
            current.status, current.completed_at = "completed", 3.0
            assert await tx.update_saga(current, expected_version=2)
            assert (await tx.load_saga(SAGA, "o-1")) == current
            assert await tx.delete_saga(SAGA, "o-1", expected_version=3)
            assert await tx.load_saga(SAGA, "o-1") is None


async def test_a_second_insert_of_one_key_loses(store_url):
    async with opened(store_url) as store:
        first, second = record("o-1"), record("o-1", status="other")
        async with store.transaction() as tx:
            assert await tx.insert_saga(first)
        async with store.transaction() as tx:
            assert not await tx.insert_saga(second)
            assert await tx.insert_saga(record("o-1", saga="other.saga"))
        assert await query(store_url, "SELECT status FROM busline_sagas WHERE saga = ?", SAGA) == [
            ("running",)
        ]


async def _waiting_on_a_lock(url: str) -> bool:
    waiting = await query(
        url,
        "SELECT COUNT(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return bool(waiting[0][0])


@pytest.mark.postgres
async def test_concurrent_inserts_of_one_key_one_wins_without_an_error(pg_url):
    async with opened(pg_url) as store:
        inserted = asyncio.Event()
        commit = asyncio.Event()

        async def first() -> bool:
            async with store.transaction() as tx:
                won = await tx.insert_saga(record("o-1"))
                inserted.set()
                await commit.wait()
            return won

        async def second() -> bool:
            await inserted.wait()
            async with store.transaction() as tx:
                return await tx.insert_saga(record("o-1", status="second"))

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        # The second insert waits for the first transaction's outcome...
        await eventually(lambda: _waiting_on_a_lock(pg_url), what="the second insert to wait")
        commit.set()
        # ...and, the first having committed, returns False instead of raising.
        assert await asyncio.gather(*tasks) == [True, False]

        async def insert(key: str) -> bool:
            async with store.transaction() as tx:
                return await tx.insert_saga(record(key))

        results = await asyncio.gather(*(insert("o-2") for _ in range(8)))
        assert sorted(results) == [False] * 7 + [True]


async def test_concurrent_optimistic_updates_lose_no_increment(store_url):
    async with opened(store_url, StoreSettings(pool_size=20)) as store:
        async with store.transaction() as tx:
            await tx.insert_saga(record("o-1"))
        conflicts = 0

        async def increment() -> None:
            nonlocal conflicts
            while True:
                async with store.transaction() as tx:
                    saga = await tx.load_saga(SAGA, "o-1")
                    assert saga is not None
                    saga.state = json.dumps({"n": counter(saga) + 1}).encode()
                    if await tx.update_saga(saga, saga.version):
                        return
                conflicts += 1

        await asyncio.gather(*(increment() for _ in range(20)))
        async with store.transaction() as tx:
            final = await tx.load_saga(SAGA, "o-1")
    assert final is not None
    assert (final.version, counter(final)) == (21, 20)
    if store_url.startswith("postgres"):
        assert conflicts > 0, "the updates never overlapped: the test proves nothing"


async def test_a_rolled_back_transaction_leaves_no_saga_step_or_schedule(store_url):
    async with opened(store_url) as store:
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.insert_saga(record("o-1"))
                await tx.add_saga_step(SAGA, "o-1", SagaStep("m-1", "shop.Ordered", 1.0, "started"))
                await tx.add_outbox(
                    transaction_values("t-1", "orders", 1, 0.0, 100.0),
                    [message("t-1")],
                    schedule_key=f"{SAGA}/o-1/timeout",
                )
                raise RuntimeError("handler failed")
        assert await store.saga_history(SAGA, "o-1") == []
        assert await store.scheduled("") == []
        assert await store.list_sagas() == []
    for table in ("busline_sagas", "busline_saga_steps", "busline_outbox"):
        assert await count(store_url, table) == 0
    assert await count(store_url, "busline_outbox_transactions") == 0


async def test_scheduling_one_key_again_replaces_the_pending_message(store_url):
    key = f"{SAGA}/o-1/timeout"
    async with opened(store_url) as store:
        await schedule(store, "t-1", key, due_at=100.0)
        await schedule(store, "t-2", key, due_at=200.0, messages=2)
        [first, second] = await store.scheduled(key)
        assert (first.schedule_key, first.due_at, second.due_at) == (key, 200.0, 200.0)
        assert first.message_type == "shop.Timeout"
        assert await query(store_url, "SELECT DISTINCT tx_id FROM busline_outbox") == [("t-2",)]
        assert await count(store_url, "busline_outbox_transactions") == 1
        assert [m.message_id for m in await store.scheduled("")] == [
            row[0] for row in await query(store_url, "SELECT message_id FROM busline_outbox")
        ]


async def _claim_all(store: Store, now: float) -> list[str]:
    """What a relay claims at ``now``, all of it sent."""
    async with store.claim("orders", now, limit=100, lease=30.0) as claim:
        claim.sent.extend(row.id for row in claim.rows)
        return [row.tx_id for row in claim.rows]


async def test_the_relay_claims_a_scheduled_message_only_when_due(store_url):
    key = f"{SAGA}/o-1/timeout"
    async with opened(store_url) as store:
        await schedule(store, "timeout", key, due_at=100.0)
        async with store.transaction() as tx:
            await tx.add_outbox(transaction_values("now", "orders", 1, 0.0, 0.0), [message("now")])
        assert await _claim_all(store, now=99.9) == ["now"]
        assert [m.schedule_key for m in await store.scheduled(SAGA)] == [key]
        assert await _claim_all(store, now=100.0) == ["timeout"]
        assert await store.scheduled(SAGA) == []
        # The sent one is kept (outbox_retention): a new timeout under the key is a new message.
        await schedule(store, "again", key, due_at=300.0)
        assert len(await store.scheduled(key)) == 1
        assert await count(store_url, "busline_outbox_transactions") == 3


async def test_cancel_scheduled_deletes_the_pending_messages_under_a_prefix(store_url):
    async with opened(store_url) as store:
        await schedule(store, "a1", f"{SAGA}/a/t1", due_at=10.0)
        await schedule(store, "a2", f"{SAGA}/a/t2", due_at=20.0, messages=2)
        await schedule(store, "ab", f"{SAGA}/ab/t1", due_at=30.0)
        await schedule(store, "sent", f"{SAGA}/a/t3", due_at=0.0)
        assert await _claim_all(store, now=5.0) == ["sent"]
        async with store.transaction() as tx:
            assert await tx.cancel_scheduled(f"{SAGA}/a/") == 2
            assert await tx.cancel_scheduled(f"{SAGA}/zzz") == 0
            with pytest.raises(ValueError, match="non-empty"):
                await tx.cancel_scheduled("")
        assert [m.schedule_key for m in await store.scheduled("")] == [f"{SAGA}/ab/t1"]
        # The dispatched one stays, with its row, until the purge.
        assert sorted(await query(store_url, "SELECT DISTINCT tx_id FROM busline_outbox")) == [
            ("ab",),
            ("sent",),
        ]


def test_a_prefix_is_a_code_point_range():
    assert prefix_bounds("saga/o-1/") == ("saga/o-1/", "saga/o-10")
    assert prefix_bounds("a\U0010ffff") == ("a\U0010ffff", "b")
    assert prefix_bounds("\U0010ffff") == ("\U0010ffff", None)
    assert prefix_bounds("\ud7ff") == ("\ud7ff", "\ue000")
    assert prefix_bounds("") == ("", None)


async def test_list_sagas_stalest_first_with_filters(store_url):
    async with opened(store_url) as store, store.transaction() as tx:
        await tx.insert_saga(record("o-3", at=30.0))
        await tx.insert_saga(record("o-1", at=10.0))
        await tx.insert_saga(record("o-2", at=20.0, status="compensating"))
        await tx.insert_saga(record("p-1", saga="billing", at=5.0))
    # Tooling opens the database as it is.
    async with opened(store_url, migrate=False) as store:

        async def keys(**filters: Any) -> list[str]:
            return [saga.key for saga in await store.list_sagas(**filters)]

        assert await keys() == ["p-1", "o-1", "o-2", "o-3"]
        assert await keys(saga=SAGA) == ["o-1", "o-2", "o-3"]
        assert await keys(status="running") == ["p-1", "o-1", "o-3"]
        assert await keys(saga=SAGA, status="running", updated_before=30.0) == ["o-1"]
        assert await keys(limit=2) == ["p-1", "o-1"]
        [listed] = await store.list_sagas(saga="billing")
        assert listed == record("p-1", saga="billing", at=5.0)


async def test_saga_history_oldest_first_and_deleted_with_the_saga(store_url):
    steps = [
        SagaStep("m-1", "shop.Ordered", 1.0, "started"),
        SagaStep("m-2", "shop.Paid", 2.0, "updated"),
        SagaStep("m-3", "shop.Shipped", 3.0, "completed"),
    ]
    async with opened(store_url) as store:
        async with store.transaction() as tx:
            await tx.insert_saga(record("o-1"))
            for step in steps:
                await tx.add_saga_step(SAGA, "o-1", step)
            await tx.add_saga_step(SAGA, "o-2", SagaStep("m-9", "shop.Ordered", 0.5, "started"))
        assert await store.saga_history(SAGA, "o-1") == steps
        async with store.transaction() as tx:
            assert await tx.delete_saga(SAGA, "o-1", expected_version=1)
        assert await store.saga_history(SAGA, "o-1") == []
        assert len(await store.saga_history(SAGA, "o-2")) == 1


async def test_purge_deletes_completed_sagas_past_their_retention(store_url):
    settings = StoreSettings(saga_retention=100.0)
    assert settings.keeps_completed_sagas and not StoreSettings().keeps_completed_sagas
    with pytest.raises(ValueError, match="saga_retention"):
        StoreSettings(saga_retention=-1.0)
    async with opened(store_url, settings) as store:
        async with store.transaction() as tx:
            for key, completed_at in (("old-1", 10.0), ("old-2", 20.0), ("recent", 120.0)):
                saga = record(key, status="completed")
                saga.completed_at = completed_at
                await tx.insert_saga(saga)
                await tx.add_saga_step(SAGA, key, SagaStep(key, "shop.Done", 1.0, "completed"))
            await tx.insert_saga(record("running"))
        now = 150.0
        # Without sagas_before (what callers passed so far) no saga goes.
        assert await store.purge(now, now, 1000) == 0
        before = now - settings.saga_retention
        # Batched: one instance (and its step) per call.
        assert await store.purge(now, now, 1, sagas_before=before) == 2
        assert await store.purge(now, now, 1, sagas_before=before) == 2
        assert await store.purge(now, now, 1, sagas_before=before) == 0
        assert sorted(saga.key for saga in await store.list_sagas()) == ["recent", "running"]
        assert await count(store_url, "busline_saga_steps") == 1


async def test_stats_count_scheduled_messages_apart_until_due(store_url):
    async with opened(store_url) as store:
        # Scheduled at 0.0 for 100.0; an ordinary message committed at 150.0.
        await schedule(store, "timeout", f"{SAGA}/o-1/t", due_at=100.0, messages=2)
        async with store.transaction() as tx:
            await tx.add_outbox(
                transaction_values("now", "orders", 1, 150.0, 0.0), [message("now")]
            )
        early = await store.stats(now=50.0)
        assert (early.pending, early.scheduled, early.oldest_pending_at) == (1, 2, 150.0)
        # Overdue, the timeout is backlog, as old as its due time (not its scheduling).
        late = await store.stats(now=200.0)
        assert (late.pending, late.scheduled, late.oldest_pending_at) == (3, 0, 100.0)
        assert late.failing == 0


async def database_at_version_3(url: str) -> None:
    """The schema as busline left it before migration 4, with a pending message."""
    postgres = not url.startswith("sqlite")
    async with Db(url) as db:
        await db.execute(VERSION_TABLE_POSTGRES if postgres else VERSION_TABLE_SQLITE)
        for migration in MIGRATIONS[:3]:
            for statement in migration.postgres if postgres else migration.sqlite:
                await db.execute(statement)
            await db.execute(
                "INSERT INTO busline_schema_version (version, description, applied_at) "
                "VALUES (?, ?, ?)",
                migration.version,
                migration.description,
                0.0,
            )
        await db.execute(INSERT_TRANSACTION, *transaction_values("old", "orders", 1, 1.0, 1.0))
        await db.execute(INSERT_OUTBOX, *message("old"))


async def test_a_version_3_database_upgrades_with_its_pending_messages(store_url):
    await database_at_version_3(store_url)
    async with opened(store_url) as store:
        assert LATEST_VERSION == 4
        assert await store.schema_version() == 4
        assert (await store.stats(now=2.0)).pending == 1
        await schedule(store, "timeout", f"{SAGA}/o-1/t", due_at=100.0)
        async with store.transaction() as tx:
            assert await tx.insert_saga(record("o-1"))
        assert await _claim_all(store, now=2.0) == ["old"]
        assert await _claim_all(store, now=100.0) == ["timeout"]
