"""Schema migrations: versioned, automatic, idempotent, safe when instances start together."""

from __future__ import annotations

import asyncio

import pytest

from busline import StoreError, StoreSettings
from busline.stores import open_store
from busline.stores.schema import LATEST_VERSION
from tests.stores.db import Db, query


async def test_migrations_apply_once_and_again_is_a_no_op(store_url):
    for _ in range(2):
        store = open_store(store_url)
        await store.open()
        assert await store.schema_version() == LATEST_VERSION
        await store.close()
    versions = await query(store_url, "SELECT version FROM busline_schema_version ORDER BY version")
    assert versions == [(v,) for v in range(1, LATEST_VERSION + 1)]
    for table in ("busline_outbox", "busline_inbox"):
        assert await query(store_url, f"SELECT COUNT(*) FROM {table}") == [(0,)]


async def test_instances_starting_together_migrate_once(store_url):
    stores = [open_store(store_url) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    for store in stores:
        await store.close()
    assert await query(store_url, "SELECT COUNT(*) FROM busline_schema_version") == [
        (LATEST_VERSION,)
    ]


async def test_a_schema_newer_than_the_code_is_refused(store_url):
    store = open_store(store_url)
    await store.open()
    await store.close()
    async with Db(store_url) as db:
        await db.execute(
            "INSERT INTO busline_schema_version (version, description, applied_at) "
            "VALUES (?, ?, ?)",
            LATEST_VERSION + 1,
            "from the future",
            0.0,
        )
    with pytest.raises(StoreError, match="newer than this busline"):
        await open_store(store_url).open()


async def test_tables_live_beside_the_applications_own(tables):
    store = open_store(tables)
    await store.open()
    await store.close()
    assert await query(tables, "SELECT COUNT(*) FROM orders") == [(0,)]


def test_unknown_scheme_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="known schemes"):
        open_store("mysql://u:secret@h/db")
    with pytest.raises(ValueError, match="relay_interval"):
        StoreSettings(relay_interval=0)


@pytest.mark.postgres
async def test_postgres_credentials_never_show(pg_url):
    missing = pg_url.replace("busline:busline@", "busline:s3cret-pw@") + "_missing"
    store = open_store(missing)
    assert "s3cret-pw" not in repr(store)
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "s3cret-pw" not in str(caught.value)
    assert "busline:***@" in str(caught.value)
    unreachable = open_store("postgresql://u:s3cret-pw@127.0.0.1:1/db")
    with pytest.raises(StoreError) as caught:
        await unreachable.open()
    assert "s3cret-pw" not in str(caught.value)
