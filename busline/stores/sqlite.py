"""The SQLite store (aiosqlite): the embedded default, ``sqlite:///relative.db`` or
``sqlite:////absolute/path.db``.

SQLite has one writer at a time, so the store keeps one connection and runs its transactions one
after another (``BEGIN IMMEDIATE``, which also serializes other processes on the same file). The
database runs in WAL mode with ``synchronous=FULL``: a committed transaction survives a power
cut, so a message is never sent for a transaction the database then forgets. Handlers of a bus
with a SQLite store therefore write one at a time; use PostgreSQL for concurrent writers.
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
from busline.stores.base import Claim, OutboxStats, StoreSettings
from busline.stores.errors import StoreError
from busline.stores.progress import claim_outcome
from busline.stores.rows import in_dispatch_order, row_from_record
from busline.stores.saga_sqlite import SqliteSagaStore, SqliteSagaTransaction, purge_sagas
from busline.stores.schema import VERSION_TABLE_SQLITE, pending_migrations
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

    __slots__ = ("connection",)

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def claim_inbox(self, consumer: str, key: str, message_id: str, now: float) -> bool:
        """Record ``key`` for ``consumer``; ``False`` when it was already recorded."""
        # The change counter, read without a trip to the connection's thread (closing a cursor
        # to read its rowcount would take one more): every handler with a store comes here.
        changes = self.connection.total_changes
        await self.connection.execute(sql.INSERT_INBOX, (consumer, key, message_id, now))
        return self.connection.total_changes > changes

    async def add_outbox(
        self,
        transaction: tuple[Any, ...],
        rows: list[tuple[Any, ...]],
        schedule_key: str | None = None,
    ) -> None:
        """Insert an outbox transaction and its rows (a scheduled message: replacing the pending
        one with its key)."""
        if schedule_key is not None:
            await self._add_scheduled(transaction, rows, schedule_key)
            return
        await self.connection.execute(sql.INSERT_TRANSACTION, transaction)
        await self.connection.executemany(sql.INSERT_OUTBOX, rows)


class SqliteStore(SqliteSagaStore):
    """The :class:`~busline.stores.base.Store` for ``sqlite://`` URLs."""

    dialect = "sqlite"

    def __init__(self, url: str, settings: StoreSettings) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._keep_sent = settings.keeps_sent_rows

    def __repr__(self) -> str:
        return f"<SqliteStore {mask_url(self.url)!r}>"

    async def open(self, migrate: bool = True) -> None:
        """Open the database file (created if missing), switch to WAL, migrate.

        With ``migrate=False`` the file must exist and is left as it is.
        """
        if not migrate and not await asyncio.to_thread(os.path.exists, self.path):
            raise StoreError(f"cannot open {mask_url(self.url)}: no such database file")
        try:
            if migrate:
                conn = await aiosqlite.connect(self.path, isolation_level=None)
            else:  # mode=rw: fail on a missing file instead of creating it
                uri = f"file:{quote(self.path)}?mode=rw"
                conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            await conn.execute("PRAGMA busy_timeout=10000")
            if migrate:
                await _enable_wal(conn)
            await conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {mask_url(self.url)}: {exc}") from exc
        self._conn = conn
        if not migrate:
            return
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: waits its turn, commits at the end, rolls back on error."""
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self!r} is not open")
        async with self._lock:
            if conn.in_transaction:  # a cancelled rollback can leave one behind
                await conn.rollback()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                await conn.commit()
            except BaseException:
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
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """Open a transaction: commit when the block ends, roll back if it raises."""
        async with self._write() as conn:
            yield SqliteTransaction(conn)

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
        transaction."""
        async with self._write() as conn:
            await self._finish(conn, tx_ids, now)

    async def _finish(self, conn: aiosqlite.Connection, tx_ids: list[str], now: float) -> None:
        marks = _marks(tx_ids)
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
                marks = _marks(due)
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
                    f"{sql.RELEASE}({_marks(outcome.untouched)})", (now, *outcome.untouched)
                )
            if outcome.failed:
                await conn.executemany(sql.NOTE_FAILURE, outcome.failed)
            partly_sent = outcome.partly_sent()
            if partly_sent and not self._keep_sent:
                await conn.executemany(sql.DELETE_SENT_ROWS, partly_sent)

    async def purge(
        self,
        outbox_before: float,
        inbox_before: float,
        limit: int,
        *,
        sagas_before: float | None = None,
    ) -> int:
        """Delete expired dispatched transactions with their rows, expired inbox records and
        (given ``sagas_before``) expired completed sagas with their steps."""
        async with self._write() as conn:
            expired = [
                row[0]
                for row in await conn.execute_fetchall(
                    sql.EXPIRED_TRANSACTIONS, (outbox_before, limit)
                )
            ]
            removed = 0
            if expired:
                marks = _marks(expired)
                async with conn.execute(f"{sql.DELETE_ROWS_OF}({marks})", expired) as cursor:
                    removed = cursor.rowcount
                await conn.execute(f"{sql.DELETE_TRANSACTIONS}({marks})", expired)
            async with conn.execute(sql.PURGE_INBOX, (inbox_before, limit)) as cursor:
                removed += cursor.rowcount
            if sagas_before is not None:
                removed += await purge_sagas(conn, sagas_before, limit)
        return removed

    async def stats(self, now: float | None = None) -> OutboxStats:
        """Backlog, failures and sizes, as committed; scheduled messages not due at ``now``
        (default: the wall clock) apart."""
        at = (time.time() if now is None else now,)
        async with self._write() as conn:
            [(pending, oldest, failing)] = await conn.execute_fetchall(sql.STATS_PENDING, at)
            [(scheduled,)] = await conn.execute_fetchall(sql.STATS_SCHEDULED, at)
            errors = await conn.execute_fetchall(sql.STATS_LAST_ERROR)
            [(dispatched,)] = await conn.execute_fetchall(sql.STATS_DISPATCHED)
            [(inbox,)] = await conn.execute_fetchall(sql.STATS_INBOX)
            [(version,)] = await conn.execute_fetchall(sql.SCHEMA_VERSION)
        return OutboxStats(
            pending=pending,
            oldest_pending_at=oldest,
            failing=failing,
            last_error=next(iter(errors))[0] if errors else None,
            dispatched=dispatched,
            inbox_keys=inbox,
            schema_version=version,
            scheduled=scheduled,
        )

    async def schema_version(self) -> int:
        """The highest migration applied."""
        async with self._write() as conn:
            [(version,)] = await conn.execute_fetchall(sql.SCHEMA_VERSION)
        return int(version)


def _marks(values: list[Any]) -> str:
    """``?, ?, ...``: one placeholder per value, for an ``IN`` list."""
    return ", ".join("?" for _ in values)


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
