"""The PostgreSQL store (asyncpg): the production store, ``postgresql://user:pass@host/db``.

A connection pool serves handlers concurrently. Transactions that run at the same time may share
one database transaction and its commit, each in a savepoint of its own (see
:mod:`busline.stores.pg_group`; ``StoreSettings.max_group=1``: each commits on its own).
Relays claim outbox transactions with ``FOR UPDATE SKIP LOCKED`` and hold the row locks while
they send, so any number of relays (one per bus instance) never dispatch the same row at the
same time. Query parameters of the URL other than asyncpg's own become server settings, e.g.
``?search_path=myschema`` to keep busline's tables in a schema.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped

from busline.stores import pg_group, pg_session, saga_postgres, sql
from busline.stores import postgres_sql as pg
from busline.stores.base import Claim, InboxRecord, OutboxStats, StoreSettings
from busline.stores.errors import StoreError
from busline.stores.pg_member import Member
from busline.stores.pg_prepared import PreparedStatements
from busline.stores.pg_transaction import PostgresTransaction
from busline.stores.progress import claim_outcome
from busline.stores.rows import in_dispatch_order, row_from_record
from busline.stores.schema import (
    VERSION_TABLE_POSTGRES,
    pending_migrations,
)
from busline.urls import mask_url

#: ``pg_advisory_xact_lock`` key serializing migrations of one database ("busline" in ASCII).
MIGRATION_LOCK = 0x62_75_73_6C_69_6E_65


class PostgresStore(saga_postgres.PostgresSagaStore):
    """The :class:`~busline.stores.base.Store` for ``postgresql://`` URLs."""

    dialect = "postgresql"

    def __init__(self, url: str, settings: StoreSettings) -> None:
        self.url = url
        self._pool_size = settings.pool_size
        self._keep_sent = settings.keeps_sent_rows
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        #: Transactions' groups (``None`` while closed, or with ``max_group=1``).
        self._groups: pg_group.Groups | None = None
        self._statements = PreparedStatements()

    def __repr__(self) -> str:
        return f"<PostgresStore {mask_url(self.url)!r}>"

    async def open(self, migrate: bool = True) -> None:
        """Create the connection pool and (unless ``migrate=False``) migrate."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                init=self._statements.prepare,
                **pg_session.POOL_OPTIONS,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise StoreError(
                f"cannot connect to {mask_url(self.url)}: {type(exc).__name__}: "
                f"{_without_password(str(exc), self.url)}"
            ) from None
        if self._settings.max_group > 1:
            self._groups = pg_group.Groups(
                self._pool, self._settings.max_group, self._settings.group_wait, self._statements
            )
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
        self._groups = None
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
        async with self._get_pool().acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await conn.execute(VERSION_TABLE_POSTGRES)
                applied = {row[0] for row in await conn.fetch(sql.APPLIED_VERSIONS)}
                for migration in pending_migrations(applied):
                    for statement in migration.postgres:
                        await conn.execute(statement)
                    await conn.execute(
                        pg.RECORD_VERSION, migration.version, migration.description, time.time()
                    )
            # It opened before the tables existed (the pool's first): prepare now.
            await self._statements.prepare(conn)

    def transaction(
        self, inbox: InboxRecord | None = None
    ) -> AbstractAsyncContextManager[PostgresTransaction]:
        """Open a transaction: commit at the end, roll back on error; given an inbox record,
        insert it first (``first_time``: whether it was new). The block leaves only once its
        writes are committed (or, when it raises, rolled back). Transactions running at the
        same time may share a database transaction, each in its own savepoint (see
        :mod:`busline.stores.pg_group`): one whose block raises is rolled back alone; a shared
        commit that fails fails all of them."""
        groups = self._groups
        if groups is None:
            return self._own_transaction(inbox)
        return Member(groups, inbox, self._new_transaction)

    def _new_transaction(self, conn: asyncpg.Connection) -> PostgresTransaction:
        return PostgresTransaction(conn, self._statements)

    @asynccontextmanager
    async def _own_transaction(
        self, inbox: InboxRecord | None
    ) -> AsyncIterator[PostgresTransaction]:
        """A transaction on a connection of its own: its start and the record take one round
        trip, its end and the session's reset another (see :mod:`busline.stores.pg_session`)."""
        async with self._get_pool().acquire() as conn:
            tx = self._new_transaction(conn)
            try:
                status = await conn.execute(self._statements.begin(conn, inbox))
            except BaseException as exc:
                self._statements.noticed(exc)
                await pg_session.end(conn, pg_session.ROLLBACK)
                raise
            if inbox is not None:
                tx.first_time = sql.affected(status) == 1
            try:
                yield tx
            except BaseException:
                await pg_session.end(conn, pg_session.ROLLBACK)
                raise
            try:
                await pg_session.end(conn, tx.at_commit + pg_session.COMMIT)
            except BaseException as exc:
                self._statements.noticed(exc)
                raise

    async def note_failed_dispatch(
        self, tx_id: str, sent: int, error: str, retry_at: float
    ) -> None:
        """Record that a transaction's own dispatch stopped at a failure."""
        async with self._get_pool().acquire() as conn, conn.transaction():
            await conn.execute(pg.NOTE_FAILURE, sent, retry_at, error, tx_id)
            if sent and not self._keep_sent:
                await conn.execute(pg.DELETE_SENT_ROWS, tx_id, sent)

    async def mark_dispatched(self, tx_ids: list[str], now: float) -> None:
        """Mark the transactions dispatched (or delete them and their rows), in one round trip,
        committed without waiting for the log's flush (see :func:`pg_session.mark_dispatched`)."""
        async with self._get_pool().acquire() as conn:
            try:
                await conn.execute(pg_session.mark_dispatched(tx_ids, now, self._keep_sent))
            except BaseException:
                await pg_session.end(conn, pg_session.ROLLBACK)
                raise

    @staticmethod
    async def _delete(conn: asyncpg.Connection, tx_ids: list[str]) -> None:
        await conn.execute(pg.DELETE_ROWS_OF, tx_ids)
        await conn.execute(pg.DELETE_TRANSACTIONS, tx_ids)

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
                records = await conn.fetch(pg.CLAIM, source, now, limit)
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
            await conn.execute(pg.MARK_DISPATCHED, now, outcome.finished)
        elif outcome.finished:
            await self._delete(conn, outcome.finished)
        if outcome.advanced:
            await conn.executemany(pg.ADVANCE, [(sent, now, tx) for sent, tx in outcome.advanced])
        if outcome.failed:
            await conn.executemany(pg.NOTE_FAILURE, outcome.failed)
        partly_sent = outcome.partly_sent()
        if partly_sent and not self._keep_sent:
            await conn.executemany(pg.DELETE_SENT_ROWS, partly_sent)

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
            removed = sql.affected(await conn.execute(pg.PURGE_OUTBOX, outbox_before, limit))
            removed += sql.affected(await conn.execute(pg.PURGE_INBOX, inbox_before, limit))
            if sagas_before is not None:
                removed += await saga_postgres.purge_sagas(conn, sagas_before, limit)
        return removed

    async def stats(self, now: float | None = None) -> OutboxStats:
        """Backlog, failures and sizes, as committed; scheduled messages not due at ``now``
        (default: the wall clock) apart."""
        at = time.time() if now is None else now
        async with self._get_pool().acquire() as conn:
            pending, oldest, failing = await conn.fetchrow(pg.STATS_PENDING, at)
            scheduled = await conn.fetchval(pg.STATS_SCHEDULED, at)
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
