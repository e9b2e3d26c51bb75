"""The SQLite store (aiosqlite): the embedded default, ``sqlite:///relative.db`` or
``sqlite:////absolute/path.db``.

SQLite has one writer at a time, so the store keeps one connection and runs its transactions one
after another (``BEGIN IMMEDIATE``, which also serializes other processes on the same file).
Handlers of a bus with a SQLite store therefore write one at a time; use PostgreSQL for
concurrent writers.

Every statement is a trip to aiosqlite's thread (~35 µs of CPU each), so a handler's transaction
takes as few as its work allows: the inbox record opens the transaction (the connection's
``isolation_level="IMMEDIATE"`` starts it with the insert, in one trip), the outbox transaction
and its rows are one ``executemany`` into a temporary view whose trigger writes both, and a
dispatch mark is one script. The database runs in WAL mode with ``synchronous=NORMAL`` (see
docs/outbox.md for the durability that gives; ``StoreSettings.sqlite_synchronous="FULL"`` for a
sync of the log at every commit).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import aiosqlite

from busline.stores import sql
from busline.stores.base import Claim, StoreSettings
from busline.stores.errors import StoreError
from busline.stores.progress import claim_outcome
from busline.stores.rows import in_dispatch_order, row_from_record
from busline.stores.saga_sqlite import SqliteSagaStore, SqliteSagaTransaction
from busline.stores.schema import VERSION_TABLE_SQLITE, pending_migrations
from busline.stores.sqlite_sql import (
    INSERT_OUTBOX_WRITE,
    OUTBOX_WRITE_TRIGGER,
    OUTBOX_WRITE_VIEW,
    finish_script,
)
from busline.stores.sqlite_upkeep import SqliteUpkeep, placeholders
from busline.urls import mask_url


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///path`` URL (``sqlite:///:memory:`` for a private one)."""
    parts = urlsplit(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if parts.netloc or not path:
        raise StoreError(
            f"bad SQLite URL {mask_url(url)!r}: use sqlite:///relative/path.db or "
            f"sqlite:////absolute/path.db"
        )
    return path


class SqliteTransaction(SqliteSagaTransaction):
    """An open SQLite transaction; :attr:`connection` is the ``aiosqlite.Connection``."""

    __slots__ = ("connection", "first_time")

    def __init__(self, connection: aiosqlite.Connection, first_time: bool = True) -> None:
        self.connection = connection
        #: Whether the inbox record the transaction was opened with was new.
        self.first_time = first_time

    async def claim_inbox(self, consumer: str, key: str, message_id: str, now: float) -> bool:
        """Record ``key`` for ``consumer``; ``False`` when it was already recorded."""
        # The change counter, read without a trip to the connection's thread (closing a cursor
        # to read its rowcount would take one more).
        changes = self.connection.total_changes
        await self.connection.execute(sql.INSERT_INBOX, (consumer, key, message_id, now))
        return self.connection.total_changes > changes

    async def add_outbox(
        self,
        transaction: tuple[Any, ...],
        rows: list[tuple[Any, ...]],
        schedule_key: str | None = None,
    ) -> None:
        """Insert an outbox transaction and its rows in one trip to the connection's thread (a
        scheduled message: replacing the pending one with its key)."""
        if schedule_key is not None:
            await self._add_scheduled(transaction, rows, schedule_key)
            return
        tx_values = transaction[1:]
        await self.connection.executemany(INSERT_OUTBOX_WRITE, [(*row, *tx_values) for row in rows])

    async def add_outbox_last(
        self, transaction: tuple[Any, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """As :meth:`add_outbox` (SQLite takes it at once: the commit is a trip of its own)."""
        await self.add_outbox(transaction, rows)


class SqliteStore(SqliteUpkeep, SqliteSagaStore):
    """The :class:`~busline.stores.base.Store` for ``sqlite://`` URLs."""

    dialect = "sqlite"

    def __init__(self, url: str, settings: StoreSettings) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._keep_sent = settings.keeps_sent_rows
        self._synchronous = settings.sqlite_synchronous
        #: Rows changed by the first statement of the transaction under way (see _write).
        self._first_changes = 0

    def __repr__(self) -> str:
        return f"<SqliteStore {mask_url(self.url)!r}>"

    async def open(self, migrate: bool = True) -> None:
        """Open the database file (created if missing), switch to WAL, migrate.

        With ``migrate=False`` the file must exist and is left as it is.
        """
        if not migrate and not await asyncio.to_thread(os.path.exists, self.path):
            raise StoreError(f"cannot open {mask_url(self.url)}: no such database file")
        try:
            # IMMEDIATE: a write outside a transaction starts one (BEGIN IMMEDIATE) in the same
            # trip to the thread; transactions that read first begin explicitly (see _write).
            if migrate:
                conn = await aiosqlite.connect(self.path, isolation_level="IMMEDIATE")
            else:  # mode=rw: fail on a missing file instead of creating it
                uri = f"file:{quote(self.path)}?mode=rw"
                conn = await aiosqlite.connect(uri, uri=True, isolation_level="IMMEDIATE")
            await conn.execute("PRAGMA busy_timeout=10000")
            if migrate:
                await _enable_wal(conn)
            await conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {mask_url(self.url)}: {exc}") from exc
        self._conn = conn
        if not migrate:
            return
        try:
            await self._migrate()
            await conn.execute(OUTBOX_WRITE_VIEW)
            await conn.execute(OUTBOX_WRITE_TRIGGER)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @asynccontextmanager
    async def _write(
        self, first: tuple[str, tuple[Any, ...]] | None = None
    ) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: waits its turn, commits at the end, rolls back on error.

        Given ``first``, a write statement and its parameters, the transaction starts with it
        (the connection begins it implicitly, in the same trip): for transactions that write
        before they read anything.
        """
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self!r} is not open")
        async with self._lock:
            if conn.in_transaction:  # a cancelled rollback can leave one behind
                await conn.rollback()
            try:
                if first is None:
                    await conn.execute("BEGIN IMMEDIATE")
                else:
                    before = conn.total_changes
                    await conn.execute(*first)
                    self._first_changes = conn.total_changes - before
                yield conn
                await conn.commit()
            except BaseException:
                if conn.in_transaction:
                    await conn.rollback()
                raise

    async def _migrate(self) -> None:
        async with self._write() as conn:
            await conn.execute(VERSION_TABLE_SQLITE)
            applied = {row[0] for row in await conn.execute_fetchall(sql.APPLIED_VERSIONS)}
            for migration in pending_migrations(applied):
                for statement in migration.sqlite:
                    await conn.execute(statement)
                await conn.execute(
                    sql.RECORD_VERSION, (migration.version, migration.description, time.time())
                )

    @asynccontextmanager
    async def transaction(
        self, inbox: tuple[str, str, str, float] | None = None
    ) -> AsyncIterator[SqliteTransaction]:
        """Open a transaction: commit when the block ends, roll back if it raises. Given an
        inbox record, the transaction starts by inserting it (``first_time``: whether it was new).
        """
        if inbox is None:
            async with self._write() as conn:
                yield SqliteTransaction(conn)
            return
        async with self._write((sql.INSERT_INBOX, inbox)) as conn:
            yield SqliteTransaction(conn, self._first_changes > 0)

    async def note_failed_dispatch(
        self, tx_id: str, sent: int, error: str, retry_at: float
    ) -> None:
        """Record that a transaction's own dispatch stopped at a failure."""
        async with self._write() as conn:
            await conn.execute(sql.NOTE_FAILURE, (sent, retry_at, error, tx_id))
            if sent and not self._keep_sent:
                await conn.execute(sql.DELETE_SENT_ROWS, (tx_id, sent))

    async def mark_dispatched(self, tx_ids: list[str], now: float) -> None:
        """Mark the transactions dispatched (or delete them and their rows), in one write
        transaction: one script, so one trip to the connection's thread."""
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self!r} is not open")
        script = finish_script(tx_ids, now, self._keep_sent)
        async with self._lock:
            if conn.in_transaction:  # a script would commit it: roll a leftover back first
                await conn.rollback()
            try:
                # The script begins and commits its own transaction.
                await conn.executescript(script)
            except BaseException:
                if conn.in_transaction:
                    await conn.rollback()
                raise

    async def _finish(self, conn: aiosqlite.Connection, tx_ids: list[str], now: float) -> None:
        marks = placeholders(tx_ids)
        if self._keep_sent:
            await conn.execute(f"{sql.MARK_DISPATCHED}({marks})", (now, *tx_ids))
        else:
            await conn.execute(f"{sql.DELETE_ROWS_OF}({marks})", tx_ids)
            await conn.execute(f"{sql.DELETE_TRANSACTIONS}({marks})", tx_ids)

    @asynccontextmanager
    async def claim(
        self, source: str, now: float, limit: int, lease: float
    ) -> AsyncIterator[Claim]:
        """Lease due transactions to this relay for ``lease`` seconds, then record the outcome.

        The lease (not a lock) is what keeps a relay in another process off these rows, so it
        must outlast sending them.
        """
        async with self._write() as conn:
            due = [
                row[0] for row in await conn.execute_fetchall(sql.SELECT_DUE, (source, now, limit))
            ]
            records: list[Any] = []
            if due:
                marks = placeholders(due)
                records = list(await conn.execute_fetchall(f"{sql.SELECT_UNSENT_OF}({marks})", due))
                await conn.execute(f"{sql.RELEASE}({marks})", (now + lease, *due))
        claim = Claim(in_dispatch_order([row_from_record(r) for r in records]))
        try:
            yield claim
        finally:
            if claim.rows:
                await self._record(claim, now)

    async def _record(self, claim: Claim, now: float) -> None:
        outcome = claim_outcome(claim)
        async with self._write() as conn:
            if outcome.finished:
                await self._finish(conn, outcome.finished, now)
            # Advanced and untouched transactions are due again now: their lease ends.
            if outcome.advanced:
                await conn.executemany(
                    sql.ADVANCE, [(sent, now, tx) for sent, tx in outcome.advanced]
                )
            if outcome.untouched:
                await conn.execute(
                    f"{sql.RELEASE}({placeholders(outcome.untouched)})", (now, *outcome.untouched)
                )
            if outcome.failed:
                await conn.executemany(sql.NOTE_FAILURE, outcome.failed)
            partly_sent = outcome.partly_sent()
            if partly_sent and not self._keep_sent:
                await conn.executemany(sql.DELETE_SENT_ROWS, partly_sent)


async def _enable_wal(conn: aiosqlite.Connection, attempts: int = 100) -> None:
    """Switch to WAL. The switch needs the file to itself and, unlike transactions, does not wait
    for other connections (another process creating the same database), so retry briefly."""
    for attempt in range(attempts):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05)
