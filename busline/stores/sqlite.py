"""The SQLite store (aiosqlite): the embedded default, ``sqlite:///relative.db`` or
``sqlite:////absolute/path.db``.

SQLite has one writer at a time, so the store keeps one connection and runs its transactions one
after another (``BEGIN IMMEDIATE``, which also serializes other processes on the same file);
transactions queued behind each other share one commit, each in its own savepoint (see
:mod:`busline.stores.sqlite_turns`). Handlers of a bus with a SQLite store therefore write one at
a time; use PostgreSQL for concurrent writers.

A trip to aiosqlite's thread costs ~35 µs of CPU and far more in waiting, so busline's own
statements (the inbox record, the outbox rows, savepoints, commits, dispatch marks) run directly
on the ``sqlite3`` connection under aiosqlite's, on the event loop's thread: application code
(``ctx.db``) alone goes through the thread. The outbox transaction and its rows are one
``executemany`` into a temporary view whose trigger writes both. The database runs in WAL mode
with ``synchronous=NORMAL`` (see docs/outbox.md for the durability that gives;
``StoreSettings.sqlite_synchronous="FULL"`` for a sync of the log at every commit, which then runs
in aiosqlite's thread).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
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
from busline.stores.sqlite_sql import INSERT_OUTBOX_WRITE, OUTBOX_WRITE_TRIGGER, OUTBOX_WRITE_VIEW
from busline.stores.sqlite_turns import SqliteTurns, changes_of, is_busy
from busline.stores.sqlite_upkeep import SqliteUpkeep, placeholders
from busline.urls import mask_url

#: How long a transaction waits for another process's write lock, in milliseconds.
BUSY_TIMEOUT_MS = 10_000


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
    """An open SQLite transaction; :attr:`connection` is the ``aiosqlite.Connection`` (for
    application code), :attr:`raw` the ``sqlite3`` connection under it (busline's own writes)."""

    __slots__ = ("connection", "first_time", "raw")

    def __init__(
        self, connection: aiosqlite.Connection, raw: sqlite3.Connection, first_time: bool = True
    ) -> None:
        self.connection = connection
        self.raw = raw
        #: Whether the inbox record the transaction was opened with was new.
        self.first_time = first_time

    async def add_outbox(
        self,
        transaction: tuple[Any, ...],
        rows: list[tuple[Any, ...]],
        schedule_key: str | None = None,
    ) -> None:
        """Insert an outbox transaction and its rows in one statement (a scheduled message:
        replacing the pending one with its key)."""
        if schedule_key is not None:
            self._add_scheduled(transaction, rows, schedule_key)
            return
        tx_values = transaction[1:]
        self.raw.executemany(INSERT_OUTBOX_WRITE, [(*row, *tx_values) for row in rows])

    async def add_outbox_last(
        self, transaction: tuple[Any, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """As :meth:`add_outbox` (SQLite takes it at once: the commit is the group's)."""
        await self.add_outbox(transaction, rows)


class SqliteStore(SqliteUpkeep, SqliteSagaStore):
    """The :class:`~busline.stores.base.Store` for ``sqlite://`` URLs."""

    dialect = "sqlite"

    def __init__(self, url: str, settings: StoreSettings) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._turns: SqliteTurns | None = None
        self._keep_sent = settings.keeps_sent_rows
        self._synchronous = settings.sqlite_synchronous
        self._max_group = settings.max_group

    def __repr__(self) -> str:
        return f"<SqliteStore {mask_url(self.url)!r}>"

    async def open(self, migrate: bool = True) -> None:
        """Open the database file (created if missing), switch to WAL, migrate.

        With ``migrate=False`` the file must exist and is left as it is.
        """
        if not migrate and not await asyncio.to_thread(os.path.exists, self.path):
            raise StoreError(f"cannot open {mask_url(self.url)}: no such database file")
        opened: list[sqlite3.Connection] = []
        try:
            conn = await aiosqlite.Connection(self._connector(migrate, opened), 64)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {mask_url(self.url)}: {exc}") from exc
        try:
            await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if migrate:
                await _enable_wal(conn)
            await conn.execute(f"PRAGMA synchronous={self._synchronous}")
            # From here on only BEGIN IMMEDIATE waits for other processes, and it does so in
            # aiosqlite's thread (see SqliteTurns): statements on the loop's thread never block.
            await conn.execute("PRAGMA busy_timeout=0")
            # Checkpoints sync the database file: the turns run them in the thread instead.
            await conn.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            await conn.close()  # or its thread stays
            raise StoreError(f"cannot open {mask_url(self.url)}: {exc}") from exc
        self._turns = SqliteTurns(
            opened[0],
            conn,
            max_group=self._max_group,
            sync_commit=self._synchronous == "FULL",
            busy_timeout_ms=BUSY_TIMEOUT_MS,
        )
        if not migrate:
            return
        try:
            await self._migrate()
            await conn.execute(OUTBOX_WRITE_VIEW)
            await conn.execute(OUTBOX_WRITE_TRIGGER)
        except BaseException:
            await self.close()
            raise

    def _connector(
        self, migrate: bool, opened: list[sqlite3.Connection]
    ) -> Callable[[], sqlite3.Connection]:
        """What aiosqlite calls in its thread to connect; keeps the ``sqlite3`` connection, which
        busline's own statements use from the loop's thread while they hold the turn."""
        if migrate:
            target, uri = self.path, False
        else:  # mode=rw: fail on a missing file instead of creating it
            target, uri = f"file:{quote(self.path)}?mode=rw", True

        def connect() -> sqlite3.Connection:
            # IMMEDIATE: application code writing outside busline's transactions (it should not)
            # still takes the write lock at once.
            raw = sqlite3.connect(
                target, uri=uri, isolation_level="IMMEDIATE", check_same_thread=False
            )
            opened.append(raw)
            return raw

        return connect

    async def close(self) -> None:
        """Commit what is open and close the connection."""
        turns, self._turns = self._turns, None
        if turns is None:
            return
        try:
            await turns.close()
        finally:
            await turns.conn.close()

    def _open_turns(self) -> SqliteTurns:
        if self._turns is None:
            raise StoreError(f"{self!r} is not open")
        return self._turns

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: waits its turn, commits (with the turns queued behind it) at the
        end, rolls back on error."""
        turns = self._open_turns()
        async with turns.turn():
            yield turns.conn

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
        turns = self._open_turns()
        async with turns.turn():
            raw = turns.raw
            first_time = inbox is None or changes_of(raw, sql.INSERT_INBOX, inbox) > 0
            yield SqliteTransaction(turns.conn, raw, first_time)

    async def note_failed_dispatch(
        self, tx_id: str, sent: int, error: str, retry_at: float
    ) -> None:
        """Record that a transaction's own dispatch stopped at a failure."""
        turns = self._open_turns()
        async with turns.turn():
            turns.raw.execute(sql.NOTE_FAILURE, (sent, retry_at, error, tx_id))
            if sent and not self._keep_sent:
                turns.raw.execute(sql.DELETE_SENT_ROWS, (tx_id, sent))

    async def mark_dispatched(self, tx_ids: list[str], now: float) -> None:
        """Mark the transactions dispatched (or delete them and their rows), riding along with
        the open group's commit (a turn of its own when none is open)."""
        turns = self._open_turns()
        await turns.ride(functools.partial(self._write_marks, tx_ids=tx_ids, now=now))

    def _write_marks(self, raw: sqlite3.Connection, tx_ids: list[str], now: float) -> None:
        marks = placeholders(tx_ids)
        if self._keep_sent:
            raw.execute(f"{sql.MARK_DISPATCHED}({marks})", (now, *tx_ids))
        else:
            raw.execute(f"{sql.DELETE_ROWS_OF}({marks})", tx_ids)
            raw.execute(f"{sql.DELETE_TRANSACTIONS}({marks})", tx_ids)

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
        turns = self._open_turns()
        # busline's own short writes: on the loop's thread, as the marks and failures are.
        async with turns.turn():
            raw = turns.raw
            if outcome.finished:
                self._write_marks(raw, outcome.finished, now)
            # Advanced and untouched transactions are due again now: their lease ends.
            if outcome.advanced:
                raw.executemany(sql.ADVANCE, [(sent, now, tx) for sent, tx in outcome.advanced])
            if outcome.untouched:
                raw.execute(
                    f"{sql.RELEASE}({placeholders(outcome.untouched)})", (now, *outcome.untouched)
                )
            if outcome.failed:
                raw.executemany(sql.NOTE_FAILURE, outcome.failed)
            partly_sent = outcome.partly_sent()
            if partly_sent and not self._keep_sent:
                raw.executemany(sql.DELETE_SENT_ROWS, partly_sent)


async def _enable_wal(conn: aiosqlite.Connection, attempts: int = 100) -> None:
    """Switch to WAL. The switch needs the file to itself and, unlike transactions, does not wait
    for other connections (another process creating the same database), so retry briefly."""
    for attempt in range(attempts):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05)
