"""PostgreSQL transactions sharing one database transaction (busline.stores.pg_group), on a real
server: members forced into one group by holding the first one's block open on an event while
the others queue behind it (a queued member is in its group's queue by the time the task that
opened it has set ``arrived``: nothing between the two suspends).

Rows record ``pg_current_xact_id()``, the top-level transaction id (``xmin`` would not do: a row
written in a savepoint carries the savepoint's own id)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from busline import Envelope, StoreSettings
from busline.envelope import new_message_id
from busline.messages import MessageKind
from busline.stores import open_store
from busline.stores.errors import GroupCommitError
from busline.stores.postgres import PostgresStore
from busline.stores.rows import outbox_values, transaction_values
from tests.stores.db import Db, count, query

pytestmark = pytest.mark.postgres

#: Joining is always worth it (the queue never looks too long): groups form deterministically.
GROUPED = StoreSettings(group_wait=60.0)


@asynccontextmanager
async def opened(url: str, settings: StoreSettings = GROUPED) -> AsyncIterator[PostgresStore]:
    """The store, with the test's table; no connection may be left in use at the end."""
    async with Db(url) as db:
        await db.execute("CREATE TABLE items (key TEXT PRIMARY KEY, xid TEXT NOT NULL)")
    store = open_store(url, settings)
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        yield store
        pool = store._pool  # the store's own pool: every connection must be back
        assert pool is not None and pool.get_idle_size() == pool.get_size()
    finally:
        await store.close()


class Member:
    """One transaction of a test: records its key and transaction id, sends one message."""

    def __init__(self, store: PostgresStore, key: str, **how: Any) -> None:
        self.store = store
        self.key = key
        self.arrived = asyncio.Event()  # set just before it opens its transaction
        self.entered = asyncio.Event()  # its block started
        self.release = asyncio.Event()  # its block may go on
        if how.pop("go", True):
            self.release.set()
        self.how = how
        self.first_time: bool | None = None
        #: Whether its row was visible to others when its transaction returned.
        self.visible_on_return: bool | None = None
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        self.arrived.set()
        async with self.store.transaction(("svc", self.key, self.key, 1.0)) as tx:
            self.entered.set()
            await self.release.wait()
            self.first_time = tx.first_time
            if tx.first_time:
                await self.write(tx)
        self.visible_on_return = await count(self.store.url, "items", "key = $1", self.key) == 1

    async def write(self, tx: Any) -> None:
        conn = tx.connection
        await conn.execute("INSERT INTO items VALUES ($1, pg_current_xact_id()::text)", self.key)
        if self.how.get("swallow"):
            # Swallowed: the transaction is left aborted.
            with contextlib.suppress(asyncpg.DivisionByZeroError):
                await conn.execute("SELECT 1 / 0")
        if self.how.get("sql"):
            await conn.execute(self.how["sql"])
        tx_id = new_message_id()
        envelope = Envelope(tx_id, "svc.Cmd", b"{}", tx_id, tx_id, source="svc")
        await tx.add_outbox_last(
            transaction_values(tx_id, "svc", 1, 1.0, 2.0),
            [outbox_values(tx_id, 0, MessageKind.COMMAND, "q", envelope, 1.0)],
        )
        if self.how.get("fail"):
            raise ValueError(self.key)


async def group_of(store: PostgresStore, keys: list[str], **how: dict[str, Any]) -> list[Member]:
    """Members queued behind the first, whose block waits for ``members[0].release``; options
    per key in ``how``."""
    first = Member(store, keys[0], go=False, **how.get(keys[0], {}))
    await first.entered.wait()
    members = [first]
    for key in keys[1:]:
        members.append(Member(store, key, **how.get(key, {})))
        await members[-1].arrived.wait()
    return members


async def outcomes(members: list[Member]) -> list[BaseException | None]:
    members[0].release.set()
    return list(await asyncio.gather(*(m.task for m in members), return_exceptions=True))


async def committed(url: str) -> dict[str, str]:
    """Committed rows: key -> transaction id."""
    return dict(await query(url, "SELECT key, xid FROM items"))


async def test_members_share_one_commit_and_return_after_it(pg_url):
    async with opened(pg_url) as store:
        members = await group_of(store, ["a", "b", "c", "d"])
        assert await outcomes(members) == [None] * 4
        rows = await committed(pg_url)
        assert sorted(rows) == ["a", "b", "c", "d"]
        assert len(set(rows.values())) == 1  # one database transaction
        assert all(m.visible_on_return for m in members)
        assert await count(pg_url, "busline_inbox") == 4
        assert await count(pg_url, "busline_outbox") == 4


async def test_a_failing_member_rolls_back_alone(pg_url):
    async with opened(pg_url) as store:
        members = await group_of(store, ["a", "b", "c", "d"], b={"fail": True}, d={"fail": True})
        results = await outcomes(members)
        assert [type(r).__name__ for r in results] == ["NoneType", "ValueError"] * 2
        rows = await committed(pg_url)
        assert sorted(rows) == ["a", "c"] and len(set(rows.values())) == 1
        inbox = await query(pg_url, "SELECT idempotency_key FROM busline_inbox ORDER BY 1")
        assert inbox == [("a",), ("c",)]
        assert await count(pg_url, "busline_outbox") == 2


async def test_the_first_member_failing_leaves_the_next_their_group(pg_url):
    async with opened(pg_url) as store:
        members = await group_of(store, ["a", "b", "c"], a={"fail": True})
        results = await outcomes(members)
        assert isinstance(results[0], ValueError) and results[1:] == [None, None]
        rows = await committed(pg_url)
        assert sorted(rows) == ["b", "c"] and len(set(rows.values())) == 1


async def test_duplicates_in_one_group_are_dropped_after_its_commit(pg_url):
    async with opened(pg_url) as store:
        members = await group_of(store, ["a", "b", "a", "b"])
        assert await outcomes(members) == [None] * 4
        assert [m.first_time for m in members] == [True, True, False, False]
        assert all(m.visible_on_return for m in members)
        assert await count(pg_url, "busline_inbox") == 2


@pytest.mark.parametrize("position", ["middle", "last"])
async def test_a_member_leaving_the_transaction_aborted_fails_the_group(pg_url, position):
    async with opened(pg_url) as store:
        keys = ["a", "b", "c"] if position == "middle" else ["a", "b"]
        members = await group_of(store, keys, b={"swallow": True})
        results = await outcomes(members)
        # Everyone gets a GroupCommitError, whoever's round trip failed (c's start carried b's
        # end; b, last, ran the commit): it may be another member's fault, so the retry runs
        # each again, alone, without counting it.
        assert all(isinstance(r, GroupCommitError) for r in results)
        cause = results[-1].__cause__
        assert isinstance(cause, asyncpg.InFailedSQLTransactionError)
        assert await committed(pg_url) == {}
        assert await count(pg_url, "busline_inbox") == 0
        # The connection was rolled back and reset: the next transactions commit (alone).
        solo = [Member(store, key) for key in ("x", "y")]
        await asyncio.gather(*(m.task for m in solo))
        assert sorted(await committed(pg_url)) == ["x", "y"]


async def test_a_failing_commit_fails_every_member(pg_url):
    async with opened(pg_url) as store:
        async with Db(pg_url) as db:
            await db.execute("CREATE TABLE once (v INT, UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)")
        clash = {"sql": "INSERT INTO once VALUES (1)"}
        members = await group_of(store, ["a", "b", "c"], a=clash, c=clash)
        results = await outcomes(members)
        # Everyone gets a GroupCommitError, the member that ran the commit too: the clash is
        # not its own alone.
        assert [type(r) for r in results] == [GroupCommitError] * 3
        assert isinstance(results[2].__cause__, asyncpg.UniqueViolationError)
        assert await committed(pg_url) == {}
        assert await count(pg_url, "busline_outbox") == 0
        # Run again (as the retry does), each alone: the one whose commit fails alone gets the
        # database's own error, the others commit.
        again = [Member(store, key, **how) for key, how in (("a", clash), ("b", {}), ("c", clash))]
        results = await asyncio.gather(*(m.task for m in again), return_exceptions=True)
        assert results[:2] == [None, None]
        assert isinstance(results[2], asyncpg.UniqueViolationError)
        assert sorted(await committed(pg_url)) == ["a", "b"]


async def test_a_member_cancelled_mid_turn_or_queued_leaves_the_others_to_commit(pg_url):
    async with opened(pg_url) as store:
        members = await group_of(store, ["a", "b", "c", "d"])
        stuck = members[1]
        stuck.release.clear()  # b's block will wait until cancelled
        members[0].release.set()
        await stuck.entered.wait()
        stuck.task.cancel()
        members[3].task.cancel()  # d is still queued behind c
        results = await asyncio.gather(*(m.task for m in members), return_exceptions=True)
        assert [type(r).__name__ for r in results] == [
            "NoneType",
            "CancelledError",
            "NoneType",
            "CancelledError",
        ]
        rows = await committed(pg_url)
        assert sorted(rows) == ["a", "c"] and len(set(rows.values())) == 1


async def test_max_group_1_commits_each_transaction_alone(pg_url):
    async with opened(pg_url, StoreSettings(max_group=1)) as store:
        first = Member(store, "a", go=False)
        await first.entered.wait()
        others = [Member(store, key) for key in ("b", "c")]
        await asyncio.gather(*(m.task for m in others))  # not queued behind a
        first.release.set()
        await first.task
        assert len(set((await committed(pg_url)).values())) == 3


async def test_a_slow_member_makes_arrivals_open_their_own_group(pg_url):
    # A turn already longer than group_wait: newcomers take connections of their own.
    async with opened(pg_url, StoreSettings(group_wait=0.0)) as store:
        slow = Member(store, "slow", go=False)
        await slow.entered.wait()
        quick = [Member(store, key) for key in ("b", "c")]
        await asyncio.gather(*(m.task for m in quick))  # done while slow still runs
        slow.release.set()
        await slow.task
        rows = await committed(pg_url)
        assert rows["slow"] not in (rows["b"], rows["c"])


async def test_a_queued_member_out_of_patience_goes_to_its_own_connection(pg_url):
    # Joined expecting a short wait, but the running turn lasts: after twice group_wait it leaves.
    async with opened(pg_url, StoreSettings(group_wait=0.05)) as store:
        members = await group_of(store, ["slow", "b"])
        await members[1].task  # committed while slow still holds its turn
        members[0].release.set()
        await members[0].task
        rows = await committed(pg_url)
        assert rows["slow"] != rows["b"]
