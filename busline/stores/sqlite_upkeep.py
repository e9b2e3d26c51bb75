"""The SQLite store's upkeep and inspection: the purge of expired rows, the backlog's figures and
the schema version (a mixin of :class:`~busline.stores.sqlite.SqliteStore`)."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite

from busline.stores import sql
from busline.stores.base import OutboxStats
from busline.stores.saga_sqlite import purge_sagas


def placeholders(values: list[Any]) -> str:
    """``?, ?, ...``: one placeholder per value, for an ``IN`` list."""
    return ", ".join("?" for _ in values)


class SqliteUpkeep:
    """Purge, stats and schema version, each in a write transaction of the store's."""

    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError

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
                marks = placeholders(expired)
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
