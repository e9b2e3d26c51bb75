"""SQLite transactions queued behind each other share one commit, each in its own savepoint: a
failing one takes only its own work with it, a broken shared transaction fails (and retries)
every member and nothing half of it stays, and nobody waits forever for a commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from busline import StoreSettings
from busline.stores import StoreError, open_store
from busline.stores.errors import GroupCommitError
from busline.stores.sqlite import SqliteStore
from busline.stores.sqlite_turns import Checkpoints, is_busy
from tests.stores.db import query

Member = Callable[..., Awaitable[None]]


@asynccontextmanager
async def traced(
    url: str, settings: StoreSettings | None = None
) -> AsyncIterator[tuple[SqliteStore, list[str]]]:
    """An open store with an ``orders`` table, and the statements its connection runs from now."""
    store = open_store(url, settings or StoreSettings())
    assert isinstance(store, SqliteStore)
    await store.open()
    statements: list[str] = []
    try:
        async with store.transaction() as tx:
            await tx.connection.execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
            await tx.connection.set_trace_callback(statements.append)
        statements.clear()
        yield store, statements
    finally:
        await store.close()


def commits(statements: list[str]) -> int:
    return sum(1 for statement in statements if statement == "COMMIT")


async def write(store: SqliteStore, order: str, gate: asyncio.Event | None = None) -> bool:
    """One transaction writing ``order`` (keyed by it), held open until ``gate`` is set;
    returns whether its inbox record was new."""
    async with store.transaction(("q", order, order, 1.0)) as tx:
        if tx.first_time:
            await tx.connection.execute("INSERT INTO orders (id) VALUES (?)", (order,))
        if gate is not None:
            await gate.wait()
        return tx.first_time


async def queued_behind(
    store: SqliteStore, first: asyncio.Task[object], *rest: Member
) -> list[asyncio.Task[object]]:
    """Start ``rest`` once ``first`` holds the turn, so they queue behind it in order."""
    tasks: list[asyncio.Task[object]] = []
    for member in rest:
        # One pass of the loop: the task runs until it waits for the turn (nothing before that
        # awaits), so the members queue in this order.
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(member()))
    await asyncio.sleep(0)
    assert not first.done()
    return tasks


async def test_transactions_queued_behind_each_other_commit_once_together(sqlite_url):
    gate = asyncio.Event()
    async with traced(sqlite_url) as (store, statements):
        first = asyncio.create_task(write(store, "o-1", gate))
        await asyncio.sleep(0)
        rest = await queued_behind(
            store, first, lambda: write(store, "o-2"), lambda: write(store, "o-3")
        )
        gate.set()
        assert await asyncio.gather(first, *rest) == [True, True, True]
        assert commits(statements) == 1
        assert statements.count("SAVEPOINT busline_turn") == 3
    assert await query(sqlite_url, "SELECT id FROM orders ORDER BY id") == [
        ("o-1",),
        ("o-2",),
        ("o-3",),
    ]


async def test_a_failing_transaction_in_a_group_rolls_back_only_itself(sqlite_url):
    gate = asyncio.Event()

    async def failing() -> None:
        async with store.transaction(("q", "o-2", "o-2", 1.0)) as tx:
            await tx.connection.execute("INSERT INTO orders (id) VALUES ('o-2')")
            raise RuntimeError("handler failed")

    async with traced(sqlite_url) as (store, statements):
        first = asyncio.create_task(write(store, "o-1", gate))
        await asyncio.sleep(0)
        rest = await queued_behind(store, first, failing, lambda: write(store, "o-3"))
        gate.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        assert results[0] is True and results[2] is True
        assert isinstance(results[1], RuntimeError)
        assert commits(statements) == 1
    assert await query(sqlite_url, "SELECT id FROM orders ORDER BY id") == [("o-1",), ("o-3",)]
    keys = await query(sqlite_url, "SELECT idempotency_key FROM busline_inbox ORDER BY 1")
    assert keys == [("o-1",), ("o-3",)]  # the failed one's record went with it: it can retry


async def test_a_duplicate_in_the_same_group_sees_the_first_ones_record(sqlite_url):
    gate = asyncio.Event()
    async with traced(sqlite_url) as (store, _):
        first = asyncio.create_task(write(store, "o-1", gate))
        await asyncio.sleep(0)
        rest = await queued_behind(store, first, lambda: write(store, "o-1"))
        gate.set()
        assert await asyncio.gather(first, *rest) == [True, False]
    assert await query(sqlite_url, "SELECT COUNT(*) FROM orders") == [(1,)]


async def test_a_transaction_ended_inside_a_handler_fails_its_whole_group_then_goes_alone(
    sqlite_url,
):
    """A COMMIT through ctx.db breaks the shared transaction: every member of the group is told
    (each retries; the inbox drops what did commit), and the next ones commit on their own."""
    gate = asyncio.Event()

    async def rogue() -> None:
        async with store.transaction(("q", "o-2", "o-2", 1.0)) as tx:
            await tx.connection.execute("COMMIT")

    async with traced(sqlite_url) as (store, statements):
        first = asyncio.create_task(write(store, "o-1", gate))
        await asyncio.sleep(0)
        rest = await queued_behind(store, first, rogue)
        gate.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        assert isinstance(results[0], GroupCommitError)
        assert isinstance(results[1], StoreError) and "ctx.db" in str(results[1])
        # The retry: o-1 already committed (with the rogue COMMIT), so its inbox drops it.
        statements.clear()
        assert await write(store, "o-1") is False
        gate2 = asyncio.Event()
        again = asyncio.create_task(write(store, "o-4", gate2))
        await asyncio.sleep(0)
        behind = await queued_behind(store, again, lambda: write(store, "o-5"))
        gate2.set()
        await asyncio.gather(again, *behind)
        assert commits(statements) == 3, "after a failed group, its size in turns go alone"
    assert await query(sqlite_url, "SELECT id FROM orders ORDER BY id") == [
        ("o-1",),
        ("o-4",),
        ("o-5",),
    ]


async def test_a_group_left_open_for_a_waiter_that_gave_up_still_commits(sqlite_url):
    gate = asyncio.Event()
    async with traced(sqlite_url) as (store, statements):
        waiter: asyncio.Task[object] | None = None

        async def first_then_cancel_the_waiter() -> None:
            async with store.transaction(("q", "o-1", "o-1", 1.0)) as tx:
                await tx.connection.execute("INSERT INTO orders (id) VALUES ('o-1')")
                await gate.wait()
                assert waiter is not None
                # Runs after this turn was left open for the waiter, before the waiter runs.
                asyncio.get_running_loop().call_soon(waiter.cancel)

        first = asyncio.create_task(first_then_cancel_the_waiter())
        await asyncio.sleep(0)
        [waiter] = await queued_behind(store, first, lambda: write(store, "o-2"))
        gate.set()
        await asyncio.wait_for(first, 5)
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert commits(statements) == 1
    assert await query(sqlite_url, "SELECT id FROM orders") == [("o-1",)]


async def test_with_max_group_1_every_transaction_commits_alone(sqlite_url):
    gate = asyncio.Event()
    async with traced(sqlite_url, StoreSettings(max_group=1)) as (store, statements):
        first = asyncio.create_task(write(store, "o-1", gate))
        await asyncio.sleep(0)
        rest = await queued_behind(
            store, first, lambda: write(store, "o-2"), lambda: write(store, "o-3")
        )
        gate.set()
        await asyncio.gather(first, *rest)
        assert commits(statements) == 3


async def test_checkpoints_run_in_the_thread_and_keep_the_log_short(sqlite_url):
    async with traced(sqlite_url) as (store, statements):
        for n in range(200):
            await write(store, f"o-{n}")
        assert "PRAGMA wal_checkpoint(PASSIVE)" in statements
    assert await query(sqlite_url, "SELECT COUNT(*) FROM orders") == [(200,)]


def test_the_checkpoint_interval_tends_towards_a_thousand_pages():
    checkpoints = Checkpoints()
    while not checkpoints.committed():
        pass
    checkpoints.done(pages=checkpoints.interval * 50)  # 50 pages a commit: every 20 commits
    assert checkpoints.interval == 20
    while not checkpoints.committed():
        pass
    checkpoints.done(pages=checkpoints.interval)  # 1 page a commit: as rarely as allowed
    assert checkpoints.interval == 1000


def test_every_kind_of_busy_is_busy(tmp_path):
    # A real lock held by another connection: plain SQLITE_BUSY.
    holder = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    other = sqlite3.connect(tmp_path / "x.db", isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("BEGIN IMMEDIATE")
    holder.close()
    other.close()
    assert is_busy(locked.value)
    # The extended codes keep SQLITE_BUSY in their low byte: SQLITE_BUSY_RECOVERY (261) came
    # when four instances opened one new database at once, and was taken for a real error.
    for extended in (261, 517, 773):  # _RECOVERY, _SNAPSHOT, _TIMEOUT
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = extended
        assert is_busy(error)
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = 10  # SQLITE_IOERR
    assert not is_busy(error)
    assert not is_busy(sqlite3.OperationalError("no code"))


async def test_waiting_for_another_processs_write_lock_leaves_the_loop_free(sqlite_url):
    """Another connection (another process, or a second bus on the same file) holds the write
    lock: this store's BEGIN IMMEDIATE waits for it in aiosqlite's thread, while the event loop
    keeps running, and goes ahead once the lock is free."""
    holding, release = asyncio.Event(), asyncio.Event()
    async with traced(sqlite_url) as (first, _), traced_again(sqlite_url) as second:

        async def hold() -> None:
            async with first.transaction(("q", "o-1", "o-1", 1.0)) as tx:
                await tx.connection.execute("INSERT INTO orders (id) VALUES ('o-1')")
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await holding.wait()
        waiter = asyncio.create_task(write(second, "o-2"))
        try:
            for _ in range(20):  # the loop turns while the second store waits for the lock
                await asyncio.sleep(0)
            assert not waiter.done()
        finally:
            release.set()
            await holder
        assert await asyncio.wait_for(waiter, 10) is True
    assert await query(sqlite_url, "SELECT id FROM orders ORDER BY id") == [("o-1",), ("o-2",)]


@asynccontextmanager
async def traced_again(url: str) -> AsyncIterator[SqliteStore]:
    """A second store on the same file (its tables exist already)."""
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_a_dispatch_mark_rides_along_with_the_open_groups_commit(sqlite_url):
    """A mark while a handler's transaction runs takes no turn of its own: it is written just
    before that group's commit, and returns once committed; with nothing open, it takes a turn."""
    from tests.stores.test_store_path import outbox_of

    gate = asyncio.Event()
    async with traced(sqlite_url) as (store, statements):
        async with store.transaction() as tx:
            await tx.add_outbox(*outbox_of("tx1", 1))
            await tx.add_outbox(*outbox_of("tx2", 1))
        statements.clear()
        first = asyncio.create_task(write(store, "o-1", gate))
        await asyncio.sleep(0)
        mark = asyncio.create_task(store.mark_dispatched(["tx1"], 5.0))
        await asyncio.sleep(0)
        assert not mark.done()
        gate.set()
        await asyncio.gather(first, mark)
        assert commits(statements) == 1
        assert statements.count("SAVEPOINT busline_turn") == 1  # the handler's only
        statements.clear()
        await store.mark_dispatched(["tx2"], 6.0)  # nothing open: a turn of its own
        assert commits(statements) == 1
    marked = "SELECT tx_id, dispatched_at FROM busline_outbox_transactions ORDER BY tx_id"
    assert await query(sqlite_url, marked) == [("tx1", 5.0), ("tx2", 6.0)]
