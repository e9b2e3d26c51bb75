"""The PostgreSQL store (asyncpg): the production store, ``postgresql://user:pass@host/db``.

A connection pool serves handlers concurrently, each in its own transaction. Relays claim rows
with ``FOR UPDATE SKIP LOCKED`` and hold the row locks while they send, so any number of relays
(one per bus instance) never dispatch the same row at the same time. Query parameters of the URL
other than asyncpg's own become server settings, e.g. ``?search_path=myschema`` to keep busline's
tables in a schema.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped

from busline.stores import sql
from busline.stores.base import Claim, OutboxStats, StoreError, StoreSettings
from busline.stores.rows import READ_COLUMNS_SQL, in_dispatch_order, row_from_record
from busline.stores.schema import VERSION_TABLE_POSTGRES, pending_migrations
from busline.urls import mask_url

#: ``pg_advisory_xact_lock`` key serializing migrations of one database ("busline" in ASCII).
MIGRATION_LOCK = 0x62_75_73_6C_69_6E_65

_INSERT_OUTBOX = sql.numbered(sql.INSERT_OUTBOX)
_INSERT_INBOX = sql.numbered(sql.INSERT_INBOX)
_SELECT_HEADS = sql.numbered(sql.SELECT_HEADS) + " FOR UPDATE OF o SKIP LOCKED"
#: Only each transaction's first pending row is locked: while it is, no other relay can see the
#: transaction as due (its later rows are never heads while an earlier one is pending).
_SELECT_CLAIMED = (
    f"SELECT {READ_COLUMNS_SQL} FROM busline_outbox "
    f"WHERE dispatched_at IS NULL AND tx_id = ANY($1::text[]) ORDER BY id"
)
_MARK_SENT = sql.numbered(sql.MARK_SENT)
_MARK_TRANSACTIONS = (
    "UPDATE busline_outbox SET dispatched_at = $1 "
    "WHERE dispatched_at IS NULL AND tx_id = ANY($2::text[])"
)
_MARK_SENT_IDS = "UPDATE busline_outbox SET dispatched_at = $1 WHERE id = ANY($2::bigint[])"
_DELETE_SENT = sql.numbered(sql.DELETE_SENT)
_DELETE_TRANSACTIONS = (
    "DELETE FROM busline_outbox WHERE dispatched_at IS NULL AND tx_id = ANY($1::text[])"
)
_DELETE_SENT_IDS = "DELETE FROM busline_outbox WHERE id = ANY($1::bigint[])"
_NOTE_FAILURE = sql.numbered(sql.NOTE_FAILURE)
_NOTE_FAILURE_AT = sql.numbered(sql.NOTE_FAILURE_AT)
_RELEASE_TRANSACTION = sql.numbered(sql.RELEASE_TRANSACTION)
_PURGE_OUTBOX = sql.numbered(sql.PURGE_OUTBOX)
_PURGE_INBOX = sql.numbered(sql.PURGE_INBOX)
_RECORD_VERSION = sql.numbered(sql.RECORD_VERSION)


def _affected(status: str) -> int:
    """Rows affected, from a command status such as ``INSERT 0 1`` or ``DELETE 3``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresTransaction:
    """An open PostgreSQL transaction; :attr:`connection` is the ``asyncpg`` connection."""

    __slots__ = ("connection",)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def claim_inbox(self, consumer: str, key: str, message_id: str, now: float) -> bool:
        """Record ``key`` for ``consumer``; ``False`` when it was already recorded.

        A concurrent transaction holding the same key makes this wait for its outcome.
        """
        status = await self.connection.execute(_INSERT_INBOX, consumer, key, message_id, now)
        return _affected(status) == 1

    async def add_outbox(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert outbox rows."""
        await self.connection.executemany(_INSERT_OUTBOX, rows)


class PostgresStore:
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

    async def settle(
        self, tx_id: str, sent: int, now: float, error: str | None, retry_at: float
    ) -> None:
        """Record the outcome of a transaction's own dispatch."""
        async with self._get_pool().acquire() as conn:
            if error is None:
                await self._settle_sent(conn, tx_id, sent, now)
                return
            async with conn.transaction():
                if sent:
                    await self._settle_sent(conn, tx_id, sent, now)
                await conn.execute(_NOTE_FAILURE_AT, error, tx_id, sent)
                await conn.execute(_RELEASE_TRANSACTION, retry_at, tx_id)

    async def _settle_sent(
        self, conn: asyncpg.Connection, tx_id: str, sent: int, now: float
    ) -> None:
        if self._keep_sent:
            await conn.execute(_MARK_SENT, now, tx_id, sent)
        else:
            await conn.execute(_DELETE_SENT, tx_id, sent)

    async def mark_dispatched(self, tx_ids: list[str], now: float) -> None:
        """Mark the transactions' rows dispatched (or delete them), in one statement."""
        async with self._get_pool().acquire() as conn:
            if self._keep_sent:
                await conn.execute(_MARK_TRANSACTIONS, now, tx_ids)
            else:
                await conn.execute(_DELETE_TRANSACTIONS, tx_ids)

    @asynccontextmanager
    async def claim(
        self, source: str, now: float, limit: int, lease: float
    ) -> AsyncIterator[Claim]:
        """Lock due transactions' pending rows (skipping rows other relays hold) for the whole
        block, then record the outcome and commit, which releases them."""
        async with self._get_pool().acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            try:
                heads = [row[0] for row in await conn.fetch(_SELECT_HEADS, source, now, limit)]
                records = await conn.fetch(_SELECT_CLAIMED, heads) if heads else []
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
        if claim.sent and self._keep_sent:
            await conn.execute(_MARK_SENT_IDS, now, claim.sent)
        elif claim.sent:
            await conn.execute(_DELETE_SENT_IDS, claim.sent)
        if claim.failures:
            failures = [(error, retry_at, row_id) for row_id, error, retry_at in claim.failures]
            await conn.executemany(_NOTE_FAILURE, failures)

    async def purge(self, outbox_before: float, inbox_before: float, limit: int) -> int:
        """Delete expired dispatched rows and inbox records, at most ``limit`` of each."""
        async with self._get_pool().acquire() as conn:
            removed = _affected(await conn.execute(_PURGE_OUTBOX, outbox_before, limit))
            removed += _affected(await conn.execute(_PURGE_INBOX, inbox_before, limit))
        return removed

    async def stats(self) -> OutboxStats:
        """Backlog, failures and sizes, as committed."""
        async with self._get_pool().acquire() as conn:
            pending, oldest, failing = await conn.fetchrow(sql.STATS_PENDING)
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
        )

    async def schema_version(self) -> int:
        """The highest migration applied."""
        async with self._get_pool().acquire() as conn:
            return int(await conn.fetchval(sql.SCHEMA_VERSION))


def _without_password(text: str, url: str) -> str:
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
