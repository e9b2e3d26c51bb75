"""Where each service keeps its data: its own store, never shared.

* SQLite (the embedded default): one file per service in a data folder.
* PostgreSQL: one **schema** per service in the given database (``?search_path=<schema>``), so a
  single server (and a single URL to type) is enough, yet no service can read another's tables
  by accident: each connection only sees its own schema. Schemas are named after the run, so
  runs never see each other's inboxes, and a real deployment would give each service its own
  database and credentials instead (the code would not change, only the URL).

Services write SQL in one dialect through :func:`execute` and :func:`fetch`, which turn ``?``
placeholders into asyncpg's ``$1`` when the connection is PostgreSQL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SERVICES = (
    "checkout",
    "fulfilment",
    "payment",
    "inventory",
    "shipping",
    "notification",
    "loyalty",
)


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL server."""
    return urlsplit(url).scheme in ("postgresql", "postgres")


def schema_of(run_id: str, service: str) -> str:
    """The PostgreSQL schema of ``service`` in run ``run_id``."""
    return f"shop_{run_id}_{service}"


def store_url(base: str, service: str, run_id: str) -> str:
    """The store URL of ``service``: a SQLite file in folder ``base`` (a ``sqlite:///`` URL or
    a path), or a schema of its own in the PostgreSQL database ``base``."""
    if is_postgres(base):
        parts = urlsplit(base)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
        query.append(("search_path", schema_of(run_id, service)))
        return urlunsplit(parts._replace(query=urlencode(query)))
    folder = base.removeprefix("sqlite:///") if base.startswith("sqlite:") else base
    return f"sqlite:///{Path(folder) / service}.db"


def plain_dsn(url: str) -> str:
    """``url`` without busline's server-setting query parameters (for a direct connection)."""
    return urlunsplit(urlsplit(url)._replace(query=""))


async def create_schemas(base: str, run_id: str, services: tuple[str, ...]) -> None:
    """Create each service's schema (PostgreSQL only: busline creates tables, not schemas)."""
    await _each_schema(base, run_id, services, 'CREATE SCHEMA IF NOT EXISTS "{schema}"')


async def drop_schemas(base: str, run_id: str, services: tuple[str, ...]) -> None:
    """Drop the run's schemas (PostgreSQL only)."""
    await _each_schema(base, run_id, services, 'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _each_schema(base: str, run_id: str, services: tuple[str, ...], statement: str) -> None:
    """Run ``statement`` (``{schema}`` filled in) for each service's schema, on one connection."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(plain_dsn(base))
    try:
        for service in services:
            await conn.execute(statement.format(schema=schema_of(run_id, service)))
    finally:
        await conn.close()


_PLACEHOLDER = re.compile(r"\?")


def _numbered(sql: str) -> str:
    counter = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _is_asyncpg(db: Any) -> bool:
    return type(db).__module__.startswith("asyncpg")


async def execute(db: Any, sql: str, *args: Any) -> None:
    """Run one statement on ``ctx.db``/``tx.db``, whichever driver it is."""
    if _is_asyncpg(db):
        await db.execute(_numbered(sql), *args)
    else:
        await db.execute(sql, args)


async def fetch(db: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on ``ctx.db``/``tx.db``, as tuples."""
    if _is_asyncpg(db):
        return [tuple(r) for r in await db.fetch(_numbered(sql), *args)]
    async with db.execute(sql, args) as cursor:
        return [tuple(r) for r in await cursor.fetchall()]


async def create_tables(bus: Any, statements: tuple[str, ...]) -> None:
    """Create a service's own tables, in a busline transaction like any other write."""
    async with bus.transaction() as tx:
        for statement in statements:
            await execute(tx.db, statement)
