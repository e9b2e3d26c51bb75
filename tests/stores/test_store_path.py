"""The handler's store path, made short (issue 16): a transaction opened with its inbox record,
the outbox transaction and its rows written together, the dispatch mark in one write, and what
each still guarantees, on both stores."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from busline import Envelope, StoreSettings
from busline.envelope import new_message_id
from busline.messages import MessageKind
from busline.stores import Store, open_store
from busline.stores.rows import outbox_values, transaction_values
from tests.stores.db import count, query, run


@asynccontextmanager
async def opened(url: str, settings: StoreSettings | None = None) -> AsyncIterator[Store]:
    store = open_store(url, settings or StoreSettings())
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def outbox_of(tx_id: str, messages: int) -> tuple[tuple[object, ...], list[tuple[object, ...]]]:
    rows = []
    for position in range(messages):
        envelope = Envelope(new_message_id(), "t.Cmd", b"{}", "c", "c", None, None)
        envelope.source = "svc"
        rows.append(outbox_values(tx_id, position, MessageKind.COMMAND, "q", envelope, 1.0))
    return transaction_values(tx_id, "svc", messages, 1.0, 31.0), rows


async def test_a_transaction_opened_with_its_inbox_record_tells_a_duplicate(store_url):
    async with opened(store_url) as store:
        async with store.transaction(("q", "key-1", "m-1", 1.0)) as tx:
            assert tx.first_time
        async with store.transaction(("q", "key-1", "m-2", 2.0)) as tx:
            assert not tx.first_time
        async with store.transaction(("other-q", "key-1", "m-3", 2.0)) as tx:
            assert tx.first_time  # the inbox is per consumer
        async with store.transaction() as tx:
            assert tx.first_time  # no record given
    assert await count(store_url, "busline_inbox") == 2


async def test_an_inbox_record_rolls_back_with_its_transaction(store_url):
    async with opened(store_url) as store:
        with pytest.raises(RuntimeError):
            async with store.transaction(("q", "key-1", "m-1", 1.0)):
                raise RuntimeError("handler failed")
        async with store.transaction(("q", "key-1", "m-1", 1.0)) as tx:
            assert tx.first_time  # the failed attempt left nothing
    assert await count(store_url, "busline_inbox") == 1


async def test_the_outbox_transaction_and_its_rows_go_in_together_or_not_at_all(store_url):
    async with opened(store_url) as store:
        tx_id = new_message_id()
        async with store.transaction(("q", "k", "m", 1.0)) as tx:
            await tx.add_outbox(*outbox_of(tx_id, 3))
        failed = new_message_id()
        with pytest.raises(RuntimeError):
            async with store.transaction(("q", "k2", "m2", 1.0)) as tx:
                await tx.add_outbox(*outbox_of(failed, 2))
                raise RuntimeError("commit never comes")
    [(messages, sent, source, available_at)] = await query(
        store_url, "SELECT messages, sent, source, available_at FROM busline_outbox_transactions"
    )
    assert (messages, sent, source, available_at) == (3, 0, "svc", 31.0)
    positions = await query(
        store_url, "SELECT position FROM busline_outbox WHERE tx_id = ? ORDER BY position", tx_id
    )
    assert [row[0] for row in positions] == [0, 1, 2]
    assert await count(store_url, "busline_outbox") == 3


@pytest.mark.parametrize("retention", [3600.0, 0.0])
async def test_a_dispatch_mark_covers_every_transaction_of_its_batch(store_url, retention):
    async with opened(store_url, StoreSettings(outbox_retention=retention)) as store:
        tx_ids = [new_message_id() for _ in range(3)]
        for tx_id in tx_ids:
            async with store.transaction() as tx:
                await tx.add_outbox(*outbox_of(tx_id, 2))
        await store.mark_dispatched(tx_ids[:2], 5.0)
        pending = await query(
            store_url,
            "SELECT tx_id FROM busline_outbox_transactions WHERE dispatched_at IS NULL",
        )
        assert [row[0] for row in pending] == [tx_ids[2]]
        kept = await count(store_url, "busline_outbox")
        assert kept == (6 if retention else 2)


@pytest.mark.parametrize("level", ["NORMAL", "FULL"])
async def test_sqlite_runs_wal_with_the_synchronous_setting_asked_for(sqlite_url, level):
    async with opened(sqlite_url, StoreSettings(sqlite_synchronous=level)) as store:
        conn = store.transaction  # the store's own connection is private: ask SQLite through it
        async with conn() as tx:
            [(mode,)] = await tx.connection.execute_fetchall("PRAGMA journal_mode")
            [(synchronous,)] = await tx.connection.execute_fetchall("PRAGMA synchronous")
    assert mode == "wal"
    assert synchronous == {"NORMAL": 1, "FULL": 2}[level]
    with pytest.raises(ValueError):
        StoreSettings(sqlite_synchronous="OFF")


async def test_a_sqlite_handler_transaction_leaves_only_the_handlers_writes_to_the_thread(
    sqlite_url,
):
    """busline's statements (begin, savepoint, inbox record, outbox rows, release, commit) run on
    the event loop's thread; only the handler's own write takes a trip to aiosqlite's thread. The
    trace callback runs on the thread that runs the statement."""
    async with opened(sqlite_url) as store:
        statements: list[tuple[str, int]] = []

        def trace(statement: str) -> None:
            statements.append((statement, threading.get_ident()))

        async with store.transaction() as tx:
            await tx.connection.execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
            await tx.connection.set_trace_callback(trace)
        statements.clear()
        async with store.transaction(("q", "k", "m", 1.0)) as tx:
            await tx.connection.execute("INSERT INTO orders (id) VALUES (?)", ("o-1",))
            await tx.add_outbox(*outbox_of(new_message_id(), 2))
        await tx.connection.set_trace_callback(None)
    loop_thread = threading.get_ident()
    # Trigger bodies are traced as comments; an executemany's rows each as its statement.
    heads = [(" ".join(s.split()[:3]), t) for s, t in statements if not s.startswith("--")]
    top_level = [head for i, head in enumerate(heads) if i == 0 or heads[i - 1] != head]
    assert [head for head, _ in top_level] == [
        "BEGIN IMMEDIATE",
        "SAVEPOINT busline_turn",
        "INSERT INTO busline_inbox",
        "INSERT INTO orders",
        "INSERT INTO busline_outbox_write",
        "RELEASE busline_turn",
        "COMMIT",
    ]
    off_loop = [head for head, thread in top_level if thread != loop_thread]
    assert off_loop == ["INSERT INTO orders"]


async def test_the_sqlite_database_file_holds_no_trace_of_the_temporary_view(sqlite_url):
    async with opened(sqlite_url):
        pass
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    assert "busline_outbox_write" not in names


async def test_an_idempotency_key_with_quotes_is_recorded_as_it_is(store_url):
    key = "it's; DROP TABLE busline_inbox; --'"
    async with opened(store_url) as store:
        async with store.transaction(("q", key, "m-1", 1.0)) as tx:
            assert tx.first_time
        async with store.transaction(("q", key, "m-2", 2.0)) as tx:
            assert not tx.first_time
    assert await query(store_url, "SELECT idempotency_key FROM busline_inbox") == [(key,)]


@pytest.mark.postgres
async def test_postgres_session_state_never_reaches_the_next_transaction(pg_url):
    async with opened(pg_url, StoreSettings(pool_size=1)) as store:
        async with store.transaction(("q", "k", "m", 1.0)) as tx:
            await tx.connection.execute("SET application_name = 'leaky'")
            await tx.connection.execute("SELECT pg_advisory_lock(42)")
        async with store.transaction() as tx:
            assert await tx.connection.fetchval("SHOW application_name") != "leaky"
            held = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1"
            assert await tx.connection.fetchval(held, tx.connection.get_server_pid()) == 0


@pytest.mark.postgres
async def test_postgres_a_failed_commit_raises_and_leaves_a_usable_connection(pg_url):
    async with opened(pg_url, StoreSettings(pool_size=1)) as store:
        async with store.transaction() as tx:
            await tx.connection.execute(
                "CREATE TABLE once (id TEXT, UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        with pytest.raises(Exception, match="duplicate key"):
            async with store.transaction(("q", "k", "m", 1.0)) as tx:
                await tx.connection.execute("INSERT INTO once VALUES ('a'), ('a')")
        async with store.transaction(("q", "k", "m", 1.0)) as tx:
            assert tx.first_time  # the failed commit took its inbox record with it
            await tx.connection.execute("INSERT INTO once VALUES ('a')")
        with pytest.raises(RuntimeError):
            async with store.transaction(("q", "k2", "m2", 1.0)) as tx:
                await tx.connection.execute("SAVEPOINT inner_work")
                await tx.connection.execute("INSERT INTO once VALUES ('b')")
                await tx.connection.execute("ROLLBACK TO SAVEPOINT inner_work")
                raise RuntimeError("handler failed")
    assert await query(pg_url, "SELECT id FROM once") == [("a",)]
    assert await count(pg_url, "busline_inbox") == 1


@pytest.mark.postgres
@pytest.mark.parametrize("key", ["x$q", "$q$", "a$$q$b'", "q$", "\\'; --", "é$qq$"])
async def test_postgres_keys_that_look_like_quotes_are_recorded_as_they_are(pg_url, key):
    async with opened(pg_url) as store:
        async with store.transaction(("q", key, "m", 1.0)) as tx:
            assert tx.first_time
            await tx.connection.execute("SET standard_conforming_strings = off")
        async with store.transaction(("q", key, "m", 1.0)) as tx:
            assert not tx.first_time
    assert await query(pg_url, "SELECT idempotency_key FROM busline_inbox") == [(key,)]


async def test_the_last_outbox_write_keeps_every_byte_and_header(store_url):
    envelope = Envelope(new_message_id(), "t.Cmd", bytes(range(256)), "c'o", "c", None, "k$q$")
    envelope.source = "svc"
    envelope.headers = {"note": "it's $q$ \\x00 é", "n": 1, "nested": {"a": [1, None]}}
    tx_id = new_message_id()
    row = outbox_values(tx_id, 0, MessageKind.COMMAND, "q", envelope, 1.0)
    async with opened(store_url) as store, store.transaction(("q", "k", "m", 1.0)) as tx:
        await tx.add_outbox_last(transaction_values(tx_id, "svc", 1, 1.0, 31.0), [row])
    [(body, headers, key, correlation)] = await query(
        store_url,
        "SELECT body, headers, idempotency_key, correlation_id FROM busline_outbox",
    )
    assert bytes(body) == bytes(range(256))
    assert json.loads(headers) == envelope.headers
    assert (key, correlation) == ("k$q$", "c'o")


async def test_a_last_outbox_write_that_fails_fails_the_commit_and_rolls_all_back(tables):
    async with opened(tables, StoreSettings(pool_size=1)) as store:
        tx_id = new_message_id()
        async with store.transaction() as tx:
            await tx.add_outbox_last(*outbox_of(tx_id, 1))
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            async with store.transaction(("q", "k", "m", 1.0)) as tx:
                await run(tx.connection, "INSERT INTO orders (id) VALUES (?)", "o-1")
                await tx.add_outbox_last(*outbox_of(tx_id, 1))  # the same transaction id
        async with store.transaction(("q", "k", "m", 1.0)) as tx:
            assert tx.first_time
    assert await count(tables, "orders") == 0
    assert await count(tables, "busline_outbox_transactions") == 1


def test_the_postgres_mark_commits_without_waiting_for_the_log_and_quotes_its_ids():
    from busline.stores.pg_session import mark_dispatched

    script = mark_dispatched(["ab12", "x$q$y"], 5.5, keep_sent=True)
    assert script.startswith("BEGIN; SET LOCAL synchronous_commit = off;")
    assert script.endswith("; COMMIT")
    assert "$q$ab12$q$" in script and "$qq$x$q$y$qq$" in script
    deleting = mark_dispatched(["ab12"], 5.5, keep_sent=False)
    assert deleting.count("DELETE FROM") == 2


@pytest.mark.postgres
@pytest.mark.parametrize("max_group", [1, 8])
async def test_postgres_a_swallowed_sql_error_fails_the_commit_instead_of_losing_the_writes(
    pg_url, max_group
):
    """A handler that catches an SQL error and returns leaves the transaction aborted; its end
    must raise (the message is retried), not answer ROLLBACK quietly and let it be acked."""
    async with opened(pg_url, StoreSettings(pool_size=1, max_group=max_group)) as store:
        async with store.transaction() as tx:
            await tx.connection.execute("CREATE TABLE once (id TEXT PRIMARY KEY)")
        with pytest.raises(Exception, match="aborted"):
            async with store.transaction(("q", "k", "m", 1.0)) as tx:
                await tx.connection.execute("INSERT INTO once VALUES ('a')")
                with contextlib.suppress(Exception):
                    await tx.connection.execute("INSERT INTO once VALUES ('a')")
        async with store.transaction(("q", "k", "m", 1.0)) as tx:
            assert tx.first_time  # nothing of the failed one was kept: the retry runs anew
    assert await query(pg_url, "SELECT id FROM once") == []


@pytest.mark.postgres
@pytest.mark.parametrize("max_group", [1, 8])
async def test_postgres_prepares_its_statements_and_goes_on_without_them_when_they_vanish(
    pg_url, max_group, caplog
):
    """busline's inbox and outbox statements are prepared once per connection; when they vanish
    (DEALLOCATE through ctx.db here, a pooler in transaction mode in real life) the transaction
    that finds them missing fails and is retried, and the store goes on with literal SQL."""
    settings = StoreSettings(pool_size=1, max_group=max_group)
    async with opened(pg_url, settings) as store:
        async with store.transaction(("q", "k1", "m1", 1.0)) as tx:
            names = await tx.connection.fetch("SELECT name FROM pg_prepared_statements")
            assert {"busline_inbox_insert", "busline_outbox_insert"} <= {r["name"] for r in names}
            await tx.add_outbox_last(*outbox_of(new_message_id(), 1))
        with pytest.raises(Exception, match="does not exist"):
            async with store.transaction(("q", "k2", "m2", 1.0)) as tx:
                await tx.connection.execute("DEALLOCATE ALL")
                await tx.add_outbox_last(*outbox_of(new_message_id(), 1))
        [warning] = [r.getMessage() for r in caplog.records if "literal SQL" in r.getMessage()]
        assert "\n" not in warning
        async with store.transaction(("q", "k2", "m2", 1.0)) as tx:  # the retry
            assert tx.first_time
            await tx.add_outbox_last(*outbox_of(new_message_id(), 1))
    assert await count(pg_url, "busline_outbox") == 2
    assert await count(pg_url, "busline_inbox") == 2
