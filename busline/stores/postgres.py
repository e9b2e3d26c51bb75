"""The PostgreSQL store (asyncpg): the production store, ``postgresql://user:pass@host/db``.

A connection pool serves handlers concurrently, each in its own transaction. Relays claim outbox
transactions with ``FOR UPDATE SKIP LOCKED`` and hold the row locks while they send, so any
number of relays (one per bus instance) never dispatch the same row at the same time. Query
parameters of the URL other than asyncpg's own become server settings, e.g.
``?search_path=myschema`` to keep busline's tables in a schema.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped

from busline.stores import saga_postgres, sql
from busline.stores.base import Claim, OutboxStats, StoreSettings
from busline.stores.errors import StoreError
from busline.stores.progress import claim_outcome
from busline.stores.rows import in_dispatch_order, row_from_record
from busline.stores.schema import (
    OUTBOX_COLUMNS,
    TRANSACTION_COLUMNS,
    VERSION_TABLE_POSTGRES,
    pending_migrations,
)
from busline.urls import mask_url

#: ``pg_advisory_xact_lock`` key serializing migrations of one database ("busline" in ASCII).
MIGRATION_LOCK = 0x62_75_73_6C_69_6E_65

_INSERT_OUTBOX = sql.numbered(sql.INSERT_OUTBOX)
_INSERT_TRANSACTION = sql.numbered(sql.INSERT_TRANSACTION)
_INSERT_INBOX = sql.numbered(sql.INSERT_INBOX)
#: Due transactions, locked (skipping those other relays hold) until the claim ends, with their
#: unsent rows, in one statement.
_CLAIM = f"""
WITH due AS ({sql.numbered(sql.SELECT_DUE)} FOR UPDATE SKIP LOCKED)
SELECT {sql.ROW_COLUMNS}, due.attempts
FROM due JOIN busline_outbox o ON o.tx_id = due.tx_id AND o.position >= due.sent"""
_MARK_DISPATCHED = sql.numbered(sql.MARK_DISPATCHED).removesuffix("IN ") + "= ANY($2::text[])"
_ADVANCE = sql.numbered(sql.ADVANCE)
_NOTE_FAILURE = sql.numbered(sql.NOTE_FAILURE)
_DELETE_ROWS_OF = sql.DELETE_ROWS_OF.removesuffix("IN ") + "= ANY($1::text[])"
_DELETE_TRANSACTIONS = sql.DELETE_TRANSACTIONS.removesuffix("IN ") + "= ANY($1::text[])"
_DELETE_SENT_ROWS = sql.numbered(sql.DELETE_SENT_ROWS)
#: Transactions and their rows go together, in one statement: a concurrent purge by another
#: instance can then never leave rows without their transaction. ``= ANY(ARRAY(...))`` looks each
#: expired transaction up by key; ``IN (...)`` let the planner scan the whole table per batch.
_PURGE_OUTBOX = f"""
WITH expired AS (
  DELETE FROM busline_outbox_transactions
  WHERE tx_id = ANY(ARRAY({sql.numbered(sql.EXPIRED_TRANSACTIONS)})) RETURNING tx_id)
DELETE FROM busline_outbox WHERE tx_id IN (SELECT tx_id FROM expired)"""
_PURGE_INBOX = sql.numbered(sql.PURGE_INBOX)
_RECORD_VERSION = sql.numbered(sql.RECORD_VERSION)
_STATS_PENDING = sql.numbered(sql.STATS_PENDING)
_STATS_SCHEDULED = sql.numbered(sql.STATS_SCHEDULED)


#: Most rows inserted with their transaction in one statement; more take two round trips.
ONE_STATEMENT_ROWS = 16


@functools.lru_cache(maxsize=2 * ONE_STATEMENT_ROWS)
def _insert_with_rows(rows: int, scheduled: bool = False) -> str:
    """A transaction row and ``rows`` outbox rows in one statement: a handler's commit costs
    one round trip for its outbox, whatever it sent (a scheduled transaction's values end with
    its key)."""
    first = len(TRANSACTION_COLUMNS) + 1 + scheduled
    width = len(OUTBOX_COLUMNS)
    groups = ", ".join(
        "(" + ", ".join(f"${first + row * width + column}" for column in range(width)) + ")"
        for row in range(rows)
    )
    insert = saga_postgres.INSERT_SCHEDULED_TRANSACTION if scheduled else _INSERT_TRANSACTION
    return (
        f"WITH tx AS ({insert}) "
        f"INSERT INTO busline_outbox ({', '.join(OUTBOX_COLUMNS)}) VALUES {groups}"
    )


class PostgresTransaction(saga_postgres.PostgresSagaTransaction):
    """An open PostgreSQL transaction; :attr:`connection` is the ``asyncpg`` connection."""

    __slots__ = ("connection",)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def claim_inbox(self, consumer: str, key: str, message_id: str, now: float) -> bool:
        """Record ``key`` for ``consumer``; ``False`` when it was already recorded.

        A concurrent transaction holding the same key makes this wait for its outcome.
        """
        status = await self.connection.execute(_INSERT_INBOX, consumer, key, message_id, now)
        return sql.affected(status) == 1

    async def add_outbox(
        self,
        transaction: tuple[Any, ...],
        rows: list[tuple[Any, ...]],
        schedule_key: str | None = None,
    ) -> None:
        """Insert an outbox transaction and its rows (in one round trip, unless many); a
        scheduled message replaces the pending one with its key (one more round trip)."""
        scheduled = schedule_key is not None
        if scheduled:
            await self.connection.execute(saga_postgres.REPLACE_SCHEDULED, schedule_key)
            transaction = (*transaction, schedule_key)
        if len(rows) <= ONE_STATEMENT_ROWS:
            values = [value for row in rows for value in row]
            insert = _insert_with_rows(len(rows), scheduled)
            await self.connection.execute(insert, *transaction, *values)
            return
        first = saga_postgres.INSERT_SCHEDULED_TRANSACTION if scheduled else _INSERT_TRANSACTION
        await self.connection.execute(first, *transaction)
        await self.connection.executemany(_INSERT_OUTBOX, rows)


class PostgresStore(saga_postgres.PostgresSagaStore):
    """The :class:`~busline.stores.base.Store` for ``postgresql://`` URLs."""

    dialect = "postgresql"

    def __init__(self, url: str, settings: StoreSettings) -> None:
        self.url = url
        self._pool_size = settings.pool_size
        self._keep_sent = settings.keeps_sent_rows
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return f"<PostgresStore {mask_url(self.url)!r}>"

    async def open(self, migrate: bool = True) -> None:
        """Create the connection pool and (unless ``migrate=False``) migrate."""
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self._pool_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise StoreError(
                f"cannot connect to {mask_url(self.url)}: {type(exc).__name__}: "
                f"{_without_password(str(exc), self.url)}"
            ) from None
        if not migrate:
            return
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool (waiting briefly for connections in use, then terminating)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()

    def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"{self!r} is not open")
        return self._pool

    async def _migrate(self) -> None:
        async with self._get_pool().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(VERSION_TABLE_POSTGRES)
            applied = {row[0] for row in await conn.fetch(sql.APPLIED_VERSIONS)}
            for migration in pending_migrations(applied):
                for statement in migration.postgres:
                    await conn.execute(statement)
                await conn.execute(
                    _RECORD_VERSION, migration.version, migration.description, time.time()
                )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        """Open a transaction on a pooled connection: commit at the end, roll back on error."""
        async with self._get_pool().acquire() as conn, conn.transaction():
            yield PostgresTransaction(conn)

    async def note_failed_dispatch(
        self, tx_id: str, sent: int, error: str, retry_at: float
    ) -> None:
        """Record that a transaction's own dispatch stopped at a failure."""
        async with self._get_pool().acquire() as conn, conn.transaction():
            await conn.execute(_NOTE_FAILURE, sent, retry_at, error, tx_id)
            if sent and not self._keep_sent:
                await conn.execute(_DELETE_SENT_ROWS, tx_id, sent)

    async def mark_dispatched(self, tx_ids: list[str], now: float) -> None:
        """Mark the transactions dispatched (or delete them and their rows), in one write."""
        async with self._get_pool().acquire() as conn:
            if self._keep_sent:
                await conn.execute(_MARK_DISPATCHED, now, tx_ids)
            else:
                async with conn.transaction():
                    await self._delete(conn, tx_ids)

    @staticmethod
    async def _delete(conn: asyncpg.Connection, tx_ids: list[str]) -> None:
        await conn.execute(_DELETE_ROWS_OF, tx_ids)
        await conn.execute(_DELETE_TRANSACTIONS, tx_ids)

    @asynccontextmanager
    async def claim(
        self, source: str, now: float, limit: int, lease: float
    ) -> AsyncIterator[Claim]:
        """Lock due transactions (skipping those other relays hold) for the whole block, read
        their unsent rows, then record the outcome and commit, which releases them."""
        async with self._get_pool().acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            try:
                records = await conn.fetch(_CLAIM, source, now, limit)
            except BaseException:
                await tr.rollback()
                raise
            claim = Claim(in_dispatch_order([row_from_record(r) for r in records]))
            try:
                yield claim
            finally:
                try:
                    await self._record(conn, claim, now)
                except BaseException:
                    await tr.rollback()
                    raise
                await tr.commit()

    async def _record(self, conn: asyncpg.Connection, claim: Claim, now: float) -> None:
        outcome = claim_outcome(claim)
        if outcome.finished and self._keep_sent:
            await conn.execute(_MARK_DISPATCHED, now, outcome.finished)
        elif outcome.finished:
            await self._delete(conn, outcome.finished)
        if outcome.advanced:
            await conn.executemany(_ADVANCE, [(sent, now, tx) for sent, tx in outcome.advanced])
        if outcome.failed:
            await conn.executemany(_NOTE_FAILURE, outcome.failed)
        partly_sent = outcome.partly_sent()
        if partly_sent and not self._keep_sent:
            await conn.executemany(_DELETE_SENT_ROWS, partly_sent)

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
        async with self._get_pool().acquire() as conn:
            removed = sql.affected(await conn.execute(_PURGE_OUTBOX, outbox_before, limit))
            removed += sql.affected(await conn.execute(_PURGE_INBOX, inbox_before, limit))
            if sagas_before is not None:
                removed += await saga_postgres.purge_sagas(conn, sagas_before, limit)
        return removed

    async def stats(self, now: float | None = None) -> OutboxStats:
        """Backlog, failures and sizes, as committed; scheduled messages not due at ``now``
        (default: the wall clock) apart."""
        at = time.time() if now is None else now
        async with self._get_pool().acquire() as conn:
            pending, oldest, failing = await conn.fetchrow(_STATS_PENDING, at)
            scheduled = await conn.fetchval(_STATS_SCHEDULED, at)
            last_error = await conn.fetchval(sql.STATS_LAST_ERROR)
            dispatched = await conn.fetchval(sql.STATS_DISPATCHED)
            inbox = await conn.fetchval(sql.STATS_INBOX)
            version = await conn.fetchval(sql.SCHEMA_VERSION)
        return OutboxStats(
            pending=pending,
            oldest_pending_at=oldest,
            failing=failing,
            last_error=last_error,
            dispatched=dispatched,
            inbox_keys=inbox,
            schema_version=version,
            scheduled=scheduled,
        )

    async def schema_version(self) -> int:
        """The highest migration applied."""
        async with self._get_pool().acquire() as conn:
            return int(await conn.fetchval(sql.SCHEMA_VERSION))


def _without_password(text: str, url: str) -> str:
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
