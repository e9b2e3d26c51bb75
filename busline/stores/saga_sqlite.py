"""The SQLite store's saga methods: mixins of its transaction and store classes, and the purge
of completed instances (see :mod:`busline.stores.sagas`).

SQLite runs one write transaction at a time, so optimistic concurrency only ever fails here
against another process writing the same file between a load and the update.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite

from busline.stores import sagas, sql
from busline.stores.sagas import SagaRecord, SagaStep, ScheduledMessage
from busline.stores.sqlite_turns import changes_of


class SqliteSagaTransaction:
    """Saga and scheduled-message writes of a :class:`~busline.stores.sqlite.SqliteTransaction`."""

    __slots__ = ()

    #: The ``sqlite3`` connection: busline's statements run on it directly, during the turn
    #: (see :mod:`busline.stores.sqlite_turns`).
    raw: sqlite3.Connection

    async def _changes(self, statement: str, params: tuple[Any, ...]) -> int:
        """Run a write and return how many rows it changed."""
        return changes_of(self.raw, statement, params)

    def _add_scheduled(
        self, transaction: tuple[Any, ...], rows: list[tuple[Any, ...]], schedule_key: str
    ) -> None:
        """Replace the pending scheduled transaction with this key (if any) by this one."""
        self.raw.execute(sagas.REPLACE_ROWS, (schedule_key,))
        self.raw.execute(sagas.REPLACE_TRANSACTION, (schedule_key,))
        self.raw.execute(sagas.INSERT_SCHEDULED_TRANSACTION, (*transaction, schedule_key))
        self.raw.executemany(sql.INSERT_OUTBOX, rows)

    async def load_saga(self, saga: str, key: str) -> SagaRecord | None:
        """The instance, or ``None``."""
        found = self.raw.execute(sagas.SELECT_SAGA, (saga, key)).fetchone()
        return sagas.saga_from_row(found) if found else None

    async def insert_saga(self, record: SagaRecord) -> bool:
        """Insert the instance at version 1 (set on ``record``); ``False`` if it exists."""
        record.version = 1
        return await self._changes(sagas.INSERT_SAGA, sagas.saga_values(record)) == 1

    async def update_saga(self, record: SagaRecord, expected_version: int) -> bool:
        """Write the instance if still at ``expected_version`` (``record.version`` then becomes
        the new version)."""
        values = sagas.update_values(record, expected_version)
        if await self._changes(sagas.UPDATE_SAGA, values) != 1:
            return False
        record.version = expected_version + 1
        return True

    async def delete_saga(self, saga: str, key: str, expected_version: int) -> bool:
        """Delete the instance and its steps if still at ``expected_version``."""
        if await self._changes(sagas.DELETE_SAGA, (saga, key, expected_version)) != 1:
            return False
        self.raw.execute(sagas.DELETE_STEPS, (saga, key))
        return True

    async def add_saga_step(self, saga: str, key: str, step: SagaStep) -> None:
        """Record a message the instance handled."""
        self.raw.execute(sagas.INSERT_STEP, sagas.step_values(saga, key, step))

    async def cancel_scheduled(self, key_prefix: str) -> int:
        """Delete the pending scheduled transactions under ``key_prefix``; return how many."""
        where, params = sagas.scheduled_where(sagas.checked_prefix(key_prefix))
        self.raw.execute(sagas.CANCEL_ROWS.format(where=where), params)
        return await self._changes(sagas.CANCEL_TRANSACTIONS.format(where=where), tuple(params))


class SqliteSagaStore:
    """Saga listings of a :class:`~busline.stores.sqlite.SqliteStore`, for tooling."""

    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError  # the store's own: its turn on the single connection

    async def list_sagas(
        self,
        saga: str | None = None,
        status: str | None = None,
        updated_before: float | None = None,
        limit: int = 100,
    ) -> list[SagaRecord]:
        """Instances, stalest first, optionally of one saga, in one status, or not updated
        since a time."""
        where, params = sagas.saga_filters(saga, status, updated_before)
        async with self._write() as conn:
            found = await conn.execute_fetchall(sagas.list_sagas_sql(where), (*params, limit))
        return [sagas.saga_from_row(row) for row in found]

    async def saga_history(self, saga: str, key: str) -> list[SagaStep]:
        """The messages an instance handled, oldest first."""
        async with self._write() as conn:
            found = await conn.execute_fetchall(sagas.SELECT_STEPS, (saga, key))
        return [sagas.step_from_row(row) for row in found]

    async def scheduled(self, key_prefix: str) -> list[ScheduledMessage]:
        """Pending scheduled messages under ``key_prefix``, soonest first."""
        where, params = sagas.scheduled_where(key_prefix)
        async with self._write() as conn:
            found = await conn.execute_fetchall(sagas.SELECT_SCHEDULED.format(where=where), params)
        return [sagas.scheduled_from_row(row) for row in found]


async def purge_sagas(conn: aiosqlite.Connection, before: float, limit: int) -> int:
    """Delete up to ``limit`` instances completed before ``before`` with their steps; return how
    many rows went."""
    expired = [
        value
        for row in await conn.execute_fetchall(sagas.EXPIRED_SAGAS, (before, limit))
        for value in row
    ]
    if not expired:
        return 0
    pairs = sagas.pairs_list(len(expired) // 2)
    removed = 0
    for statement in (sagas.STEPS_OF, sagas.SAGAS_OF):
        async with conn.execute(statement + pairs, expired) as cursor:
            removed += cursor.rowcount
    return removed
