"""Store fixtures: every store test runs on SQLite (a file in tmp_path) and PostgreSQL (a fresh
database per test), and, through ``bus_url``, on the memory and RabbitMQ transports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from busline import Bus, StoreSettings
from tests.stores import outage
from tests.stores.db import Db

#: Quick relay pacing for tests (the lease keeps its production default: a relay takes over a
#: committed row only after 30 s of the bus's clock; crash tests advance a virtual clock).
FAST = StoreSettings(relay_interval=0.02, relay_max_backoff=0.1)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A URL to a fresh PostgreSQL database, dropped after the test (skips or fails without a
    server, see tests.servers)."""
    from tests import servers

    base = servers.postgres_url()
    name = f"busline_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(base)
    yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    """A URL to a SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path}/busline.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs once per store."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def tables(store_url: str) -> str:
    """The application's own tables in the store's database; returns the store URL."""
    async with Db(store_url) as db:
        await db.execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
        await db.execute("CREATE TABLE effects (name TEXT NOT NULL, value TEXT NOT NULL)")
    return store_url


StoreBusFactory = Callable[..., Bus]


@pytest.fixture
async def make_store_bus(bus_url: str, store_url: str) -> AsyncIterator[StoreBusFactory]:
    """Build buses with this test's store on this test's transport (``outage=True`` wraps the
    transport in a switchable outage); any still running are stopped at the end."""
    made: list[Bus] = []

    def factory(
        service: str = "svc",
        *,
        outage_switch: bool = False,
        store: str | None = None,
        store_settings: StoreSettings = FAST,
        **options: Any,
    ) -> Bus:
        options.setdefault("send_timeout", 10.0)
        options.setdefault("shutdown_timeout", 10.0)
        url = outage.PREFIX + bus_url if outage_switch else bus_url
        bus = Bus(service, url, store=store or store_url, store_settings=store_settings, **options)
        made.append(bus)
        return bus

    yield factory
    for bus in reversed(made):
        await bus.stop()
