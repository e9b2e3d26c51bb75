"""The PostgreSQL store's saga methods: mixins of its transaction and store classes, and the
purge of completed instances (see :mod:`busline.stores.sagas`).

No saga row is locked on load: an update or delete names the version it read, and at READ
COMMITTED a concurrent writer of the same instance makes it wait for that writer's commit, then
re-check the version and change nothing (``False``), never raise.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped

from busline.stores import sagas
from busline.stores.sagas import SagaRecord, SagaStep, ScheduledMessage
from busline.stores.sql import affected as _affected
from busline.stores.sql import numbered

_SELECT_SAGA = numbered(sagas.SELECT_SAGA)
_INSERT_SAGA = numbered(sagas.INSERT_SAGA)
_UPDATE_SAGA = numbered(sagas.UPDATE_SAGA)
_INSERT_STEP = numbered(sagas.INSERT_STEP)
INSERT_SCHEDULED_TRANSACTION = numbered(sagas.INSERT_SCHEDULED_TRANSACTION)
#: The instance and its steps together, if it is at the expected version: how many instances
#: went (0 or 1).
_DELETE_SAGA = f"""
WITH gone AS ({numbered(sagas.DELETE_SAGA)} RETURNING saga, key),
steps AS (
  DELETE FROM busline_saga_steps s USING gone WHERE s.saga = gone.saga AND s.key = gone.key)
SELECT COUNT(*) FROM gone"""
#: The pending scheduled transaction with a key and its rows, in one statement.
REPLACE_SCHEDULED = """
WITH old AS (
  DELETE FROM busline_outbox_transactions WHERE schedule_key = $1 AND dispatched_at IS NULL
  RETURNING tx_id)
DELETE FROM busline_outbox WHERE tx_id IN (SELECT tx_id FROM old)"""
#: Completed instances past their retention with their steps, in one statement (a concurrent
#: purge by another instance waits, then skips what this one deleted).
_PURGE_SAGAS = f"""
WITH expired AS (
  DELETE FROM busline_sagas WHERE (saga, key) IN ({numbered(sagas.EXPIRED_SAGAS)})
  RETURNING saga, key),
steps AS (
  DELETE FROM busline_saga_steps s USING expired
  WHERE s.saga = expired.saga AND s.key = expired.key RETURNING 1)
SELECT (SELECT COUNT(*) FROM expired) + (SELECT COUNT(*) FROM steps)"""


def _cancel(where: str) -> str:
    """Delete the pending scheduled transactions matching ``where`` and their rows; select how
    many transactions went."""
    return numbered(
        f"WITH gone AS (DELETE FROM busline_outbox_transactions t WHERE {where} RETURNING tx_id),"
        " rows AS (DELETE FROM busline_outbox WHERE tx_id IN (SELECT tx_id FROM gone))"
        " SELECT COUNT(*) FROM gone"
    )


class PostgresSagaTransaction:
    """Saga and scheduled-message writes of a
    :class:`~busline.stores.pg_transaction.PostgresTransaction`."""

    __slots__ = ()

    connection: asyncpg.Connection

    async def load_saga(self, saga: str, key: str) -> SagaRecord | None:
        """The instance, or ``None``."""
        row = await self.connection.fetchrow(_SELECT_SAGA, saga, key)
        return None if row is None else sagas.saga_from_row(row)

    async def insert_saga(self, record: SagaRecord) -> bool:
        """Insert the instance at version 1 (set on ``record``); ``False`` if it exists,
        including when a concurrent transaction inserted it and commits meanwhile."""
        record.version = 1
        status = await self.connection.execute(_INSERT_SAGA, *sagas.saga_values(record))
        return _affected(status) == 1

    async def update_saga(self, record: SagaRecord, expected_version: int) -> bool:
        """Write the instance if still at ``expected_version`` (``record.version`` then becomes
        the new version)."""
        values = sagas.update_values(record, expected_version)
        if _affected(await self.connection.execute(_UPDATE_SAGA, *values)) != 1:
            return False
        record.version = expected_version + 1
        return True

    async def delete_saga(self, saga: str, key: str, expected_version: int) -> bool:
        """Delete the instance and its steps if still at ``expected_version``."""
        return bool(await self.connection.fetchval(_DELETE_SAGA, saga, key, expected_version))

    async def add_saga_step(self, saga: str, key: str, step: SagaStep) -> None:
        """Record a message the instance handled."""
        await self.connection.execute(_INSERT_STEP, *sagas.step_values(saga, key, step))

    async def cancel_scheduled(self, key_prefix: str) -> int:
        """Delete the pending scheduled transactions under ``key_prefix``; return how many."""
        where, params = sagas.scheduled_where(sagas.checked_prefix(key_prefix))
        return int(await self.connection.fetchval(_cancel(where), *params))


class PostgresSagaStore:
    """Saga listings of a :class:`~busline.stores.postgres.PostgresStore`, for tooling."""

    def _get_pool(self) -> asyncpg.Pool:
        raise NotImplementedError  # the store's own

    async def _fetch(self, statement: str, *params: Any) -> list[Any]:
        async with self._get_pool().acquire() as conn:
            return list(await conn.fetch(numbered(statement), *params))

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
        found = await self._fetch(sagas.list_sagas_sql(where), *params, limit)
        return [sagas.saga_from_row(row) for row in found]

    async def saga_history(self, saga: str, key: str) -> list[SagaStep]:
        """The messages an instance handled, oldest first."""
        found = await self._fetch(sagas.SELECT_STEPS, saga, key)
        return [sagas.step_from_row(row) for row in found]

    async def scheduled(self, key_prefix: str) -> list[ScheduledMessage]:
        """Pending scheduled messages under ``key_prefix``, soonest first."""
        where, params = sagas.scheduled_where(key_prefix)
        found = await self._fetch(sagas.SELECT_SCHEDULED.format(where=where), *params)
        return [sagas.scheduled_from_row(row) for row in found]


async def purge_sagas(conn: asyncpg.Connection, before: float, limit: int) -> int:
    """Delete up to ``limit`` instances completed before ``before`` with their steps; return how
    many rows went."""
    return int(await conn.fetchval(_PURGE_SAGAS, before, limit))
