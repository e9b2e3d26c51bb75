"""``busline outbox``: backlog and oldest pending age, read without changing the database."""

from __future__ import annotations

import json
import subprocess
import sys

from busline.cli import main
from busline.stores import open_store
from busline.stores.schema import LATEST_VERSION
from tests.stores.test_migration_3 import database_at_version_2
from tests.stores.test_relay import fill


async def test_outbox_reports_backlog_and_oldest_age(store_url, capsys):
    await fill(store_url, "orders", transactions=2, per_transaction=2)  # created at t=0
    # Run in a thread: the command runs its own event loop, as it does from a shell.
    status = await _in_thread(main, ["outbox", "--store", store_url, "--json"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pending"] == 4
    assert report["failing"] == 0
    assert report["oldest_pending_age"] > 1_000_000  # the rows claim to be from 1970
    assert report["schema_version"] == LATEST_VERSION
    assert "busline:busline@" not in report["store"]

    assert await _in_thread(main, ["outbox", "--store", store_url, "--max-age", "60"]) == 1
    text = capsys.readouterr().out
    assert "pending:            4" in text
    assert "oldest pending:" in text


async def test_outbox_on_an_empty_store_and_on_a_missing_one(store_url, capsys, tmp_path):
    store = open_store(store_url)
    await store.open()
    await store.close()
    assert await _in_thread(main, ["outbox", "--store", store_url, "--max-age", "1"]) == 0
    assert "oldest pending:     -" in capsys.readouterr().out

    missing = f"sqlite:///{tmp_path}/nowhere/none.db"
    assert await _in_thread(main, ["outbox", "--store", missing]) == 2
    assert "cannot open" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


async def test_outbox_on_a_store_of_an_older_schema_says_so(store_url, capsys):
    await database_at_version_2(store_url)
    assert await _in_thread(main, ["outbox", "--store", store_url]) == 2
    error = capsys.readouterr().err
    assert f"at version 2, older than this busline's ({LATEST_VERSION})" in error
    store = open_store(store_url)
    await store.open(migrate=False)
    try:
        assert await store.schema_version() == 2  # read, never migrated
    finally:
        await store.close()


def test_the_console_script_entry_point_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "busline.cli", "outbox", "--store", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot open" in result.stderr
    assert not (tmp_path / "x.db").exists()


async def _in_thread(func, *args):
    import asyncio

    return await asyncio.to_thread(func, *args)
