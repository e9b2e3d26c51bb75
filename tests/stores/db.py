"""Plain database access for the store tests: checking what is committed, from outside busline.

SQL is written with ``?`` placeholders and rewritten for PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
import asyncpg

from busline.stores.sql import numbered
from busline.stores.sqlite import sqlite_path


async def run(conn: Any, sql: str, *params: Any) -> None:
    """Execute ``sql`` on a driver connection (``ctx.db``/``tx.db``) of either kind."""
    if isinstance(conn, aiosqlite.Connection):
        await conn.execute(sql, params)
    else:
        await conn.execute(numbered(sql), *params)


async def rows(conn: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Fetch ``sql``'s rows as tuples on a driver connection of either kind."""
    if isinstance(conn, aiosqlite.Connection):
        return [tuple(r) for r in await conn.execute_fetchall(sql, params)]
    return [tuple(r) for r in await conn.fetch(numbered(sql), *params)]


class Db:
    """A connection of its own to a store's database (sees only what is committed)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    async def __aenter__(self) -> Db:
        if self.url.startswith("sqlite"):
            self.conn = await aiosqlite.connect(sqlite_path(self.url), isolation_level=None)
            await self.conn.execute("PRAGMA busy_timeout=10000")
        else:
            self.conn = await asyncpg.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()

    async def execute(self, sql: str, *params: Any) -> None:
        await run(self.conn, sql, *params)

    async def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await rows(self.conn, sql, *params)

    async def value(self, sql: str, *params: Any) -> Any:
        [(value,)] = await self.rows(sql, *params)
        return value

    async def count(self, table: str, where: str = "TRUE", *params: Any) -> int:
        return int(await self.value(f"SELECT COUNT(*) FROM {table} WHERE {where}", *params))

    async def pending(self) -> int:
        """Outbox messages committed and not dispatched yet (every service)."""
        return int(await self.value(PENDING))


#: Messages not dispatched yet: each transaction's rows from ``sent`` on.
PENDING = (
    "SELECT COALESCE(SUM(messages - sent), 0) FROM busline_outbox_transactions "
    "WHERE dispatched_at IS NULL"
)


async def pending(url: str) -> int:
    """Outbox messages not dispatched yet, on a fresh connection."""
    async with Db(url) as db:
        return await db.pending()


async def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """One query on a fresh connection."""
    async with Db(url) as db:
        return await db.rows(sql, *params)


async def count(url: str, table: str, where: str = "TRUE", *params: Any) -> int:
    """``COUNT(*)`` of ``table`` on a fresh connection."""
    async with Db(url) as db:
        return await db.count(table, where, *params)
