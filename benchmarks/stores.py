"""A fresh outbox store for each run, and plain database access to check what a run committed.

Every run that uses a store gets one of its own, so no run sees another's rows and each starts
from an empty, just-migrated schema:

- SQLite: a new file in a new temporary directory, deleted afterwards;
- PostgreSQL: a new schema ``bench_<run id>`` in the configured database, selected with
  ``?search_path=`` (busline creates its tables in the first schema of the search path), dropped
  with everything in it afterwards.

The checks read through a connection of their own, so they see only what was committed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

StoreKind = Literal["sqlite", "postgresql"]

#: The application's own table that the ``outbox-handler`` workload writes one row to per message.
BUSINESS_TABLE = "bench_orders"
_CREATE_BUSINESS = (
    f"CREATE TABLE {BUSINESS_TABLE} (order_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
    "sku TEXT NOT NULL, quantity INTEGER NOT NULL)"
)
#: The business insert, in each driver's parameter style (``?`` for aiosqlite, ``$n`` for asyncpg).
INSERT_BUSINESS: dict[StoreKind, str] = {
    "sqlite": f"INSERT INTO {BUSINESS_TABLE} (order_id, seq, sku, quantity) VALUES (?, ?, ?, ?)",
    "postgresql": (
        f"INSERT INTO {BUSINESS_TABLE} (order_id, seq, sku, quantity) VALUES ($1, $2, $3, $4)"
    ),
}
#: Whether any committed outbox transaction of a service still has messages to send. It reads
#: the index of pending transactions and stops at the first, so polling it while the relay works
#: costs next to nothing.
_ANY_PENDING: dict[StoreKind, str] = {
    "sqlite": (
        "SELECT 1 FROM busline_outbox_transactions "
        "WHERE dispatched_at IS NULL AND source = ? LIMIT 1"
    ),
    "postgresql": (
        "SELECT 1 FROM busline_outbox_transactions "
        "WHERE dispatched_at IS NULL AND source = $1 LIMIT 1"
    ),
}


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` (busline passes URL parameters on to the
    server as settings)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class BenchStore:
    """One run's store: its URL for ``Bus(store=...)`` and a connection to check it with."""

    kind: StoreKind
    url: str
    #: An ``aiosqlite`` or ``asyncpg`` connection of the harness's own (not the bus's).
    conn: Any

    async def execute(self, sql: str, *params: Any) -> None:
        """Run one statement (``?`` placeholders on SQLite, ``$n`` on PostgreSQL)."""
        if self.kind == "sqlite":
            await self.conn.execute(sql, params)
        else:
            await self.conn.execute(sql, *params)

    async def value(self, sql: str, *params: Any) -> Any:
        """The first column of the first row of ``sql`` (``None`` when there is no row)."""
        if self.kind == "sqlite":
            rows = list(await self.conn.execute_fetchall(sql, params))
            return rows[0][0] if rows else None
        return await self.conn.fetchval(sql, *params)

    async def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Every row of ``sql``, as tuples."""
        if self.kind == "sqlite":
            return [tuple(row) for row in await self.conn.execute_fetchall(sql, params)]
        return [tuple(row) for row in await self.conn.fetch(sql, *params)]

    async def count(self, table: str, where: str = "TRUE") -> int:
        """``COUNT(*)`` of ``table`` as committed."""
        return int(await self.value(f"SELECT COUNT(*) FROM {table} WHERE {where}"))

    async def any_pending(self, source: str) -> bool:
        """Whether ``source`` has committed outbox rows that are not sent yet."""
        return await self.value(_ANY_PENDING[self.kind], source) is not None

    async def wait_drained(self, source: str, within: float, poll: float = 0.01) -> float:
        """Poll until ``source`` has no pending row, for at most ``within`` seconds; return the
        ``perf_counter()`` when seen.

        The relay marks transactions dispatched at the end of each round, so this sees the drain
        within one poll interval (10 ms, against drains of seconds) of the relay's last commit.
        """
        async with asyncio.timeout(within):
            while True:
                if not await self.any_pending(source):
                    return perf_counter()
                # Polling, because busline signals no "backlog empty" (the outbox has no such
                # event in its API); one indexed probe per poll costs next to nothing.
                await asyncio.sleep(poll)


@asynccontextmanager
async def fresh_store(kind: StoreKind, run_id: str, pg_url: str) -> AsyncIterator[BenchStore]:
    """A new, empty store for one run, with the business table; removed when the block ends."""
    if kind == "sqlite":
        async with _fresh_sqlite() as store:
            yield store
    elif kind == "postgresql":
        async with _fresh_postgres(run_id, pg_url) as store:
            yield store
    else:
        raise ValueError(f"unknown store kind {kind!r}")


@asynccontextmanager
async def _fresh_sqlite() -> AsyncIterator[BenchStore]:
    import aiosqlite

    directory = Path(tempfile.mkdtemp(prefix="busline-bench-store-"))
    path = directory / "outbox.db"
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            # busline's own writes wait on ours (and ours on its) instead of failing.
            await conn.execute("PRAGMA busy_timeout=10000")
            await conn.execute(_CREATE_BUSINESS)
            # Four slashes: an absolute path (docs/outbox.md).
            yield BenchStore("sqlite", f"sqlite:///{path}", conn)
        finally:
            await conn.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def _fresh_postgres(run_id: str, pg_url: str) -> AsyncIterator[BenchStore]:
    import asyncpg  # type: ignore[import-untyped]  # no stubs shipped

    schema = f"bench_{run_id}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        url = with_search_path(pg_url, schema)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(_CREATE_BUSINESS)
            yield BenchStore("postgresql", url, conn)
        finally:
            await conn.close()
    finally:
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.close()


async def postgres_version(url: str, within: float = 5.0) -> str:
    """The PostgreSQL server version at ``url``; raises if it cannot be reached in time."""
    import asyncpg

    async with asyncio.timeout(within):
        conn = await asyncpg.connect(url)
    try:
        version = conn.get_server_version()
        return f"PostgreSQL {version.major}.{version.minor}"
    finally:
        await conn.close()
