"""``busline sagas list`` and ``show`` on SQLite and PostgreSQL, run as a subprocess: instances
stalest first, the filters, one instance's history and pending timeouts, one-line errors and no
password in any output."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from busline import Envelope
from busline.envelope import new_message_id
from busline.messages import MessageKind
from busline.stores import open_store
from busline.stores.rows import outbox_values, transaction_values
from busline.stores.sagas import SagaRecord, SagaStep
from tests.stores import conftest as store_fixtures
from tests.stores.test_migration_3 import database_at_version_2

# The store fixtures, here too: each test runs on SQLite and on a fresh PostgreSQL database
# (which, with CI=true, fails rather than skips when the server is down).
pg_url = store_fixtures.pg_url
sqlite_url = store_fixtures.sqlite_url
store_url = store_fixtures.store_url

FULFILMENT = "shop.fulfilment"
BILLING = "shop.billing"
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
SECRET_URL = "postgresql://busline:s3cret-pw@127.0.0.1:1/nowhere"


def record(saga: str, key: str, age: float, status: str = "running", **state: object) -> SagaRecord:
    """An instance last updated ``age`` seconds ago, created an hour before that."""
    updated = time.time() - age
    return SagaRecord(
        saga=saga,
        key=key,
        state=json.dumps(state).encode(),
        version=1,
        status=status,
        compensations=b"[]",
        created_at=updated - HOUR,
        updated_at=updated,
        completed_at=updated if status == "completed" else None,
    )


async def insert(url: str, *records: SagaRecord) -> None:
    store = open_store(url)
    await store.open()  # creates the tables, as a bus would
    try:
        async with store.transaction() as tx:
            for each in records:
                assert await tx.insert_saga(each)
    finally:
        await store.close()


async def busline(*argv: str, store: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m busline ARGV`` with ``$BUSLINE_STORE`` set to ``store``."""
    env = {k: v for k, v in os.environ.items() if k != "BUSLINE_STORE"}
    if store is not None:
        env["BUSLINE_STORE"] = store
    # A thread, so that this test's event loop (and its database fixtures) keeps running.
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "busline", *argv],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    for url in (store, *argv):
        password = urlsplit(url).password if url and "://" in url else None
        if password:  # shown masked, as user:***@host, if at all
            assert f":{password}@" not in result.stdout + result.stderr
    return result


def keys(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The KEY column of a listing (after its header)."""
    assert result.returncode == 0, result.stderr
    return [line.split()[1] for line in result.stdout.splitlines()[1:]]


async def test_list_is_stalest_first_and_filters(store_url):
    await insert(
        store_url,
        record(FULFILMENT, "o-4", 30),
        record(BILLING, "o-2", 10 * MINUTE),
        record(FULFILMENT, "o-1", 3 * HOUR + 5 * MINUTE),
        record(FULFILMENT, "o-3", 2 * DAY + HOUR, status="completed"),
    )
    listing = await busline("sagas", "list", "--store", store_url)
    assert keys(listing) == ["o-3", "o-1", "o-2", "o-4"]
    header, *lines = listing.stdout.splitlines()
    assert header.split() == ["SAGA", "KEY", "STATUS", "VERSION", "UPDATED", "CREATED"]
    assert lines[0].split()[:6] == [FULFILMENT, "o-3", "completed", "1", "2d", "1h"]
    assert "3h 5m ago" in lines[1]
    assert re.search(r"  10m \d+s ago  ", lines[2])

    # Options before or after the action, and the store from the environment.
    assert keys(await busline("sagas", "--saga", FULFILMENT, "list", store=store_url)) == [
        "o-3",
        "o-1",
        "o-4",
    ]
    assert keys(await busline("sagas", "list", "--status", "running", store=store_url)) == [
        "o-1",
        "o-2",
        "o-4",
    ]
    assert keys(await busline("sagas", "list", "--stale", "15m", store=store_url)) == ["o-3", "o-1"]
    assert keys(await busline("sagas", "list", "--stale", "3600", store=store_url)) == [
        "o-3",
        "o-1",
    ]
    assert keys(await busline("sagas", "list", "--stale", "1d", store=store_url)) == ["o-3"]
    both = await busline(
        "sagas", "list", "--stale", "5m", "--status", "running", "--saga", BILLING, store=store_url
    )
    assert keys(both) == ["o-2"]

    limited = await busline("sagas", "list", "--limit", "2", "--json", "--store", store_url)
    assert [item["key"] for item in json.loads(limited.stdout)] == ["o-3", "o-1"]
    assert "more may match" in limited.stderr
    first = json.loads(limited.stdout)[0]
    assert (first["saga"], first["status"], first["version"]) == (FULFILMENT, "completed", 1)
    assert first["updated_age"] > 2 * DAY


async def test_an_empty_listing_says_so(store_url):
    await insert(store_url, record(FULFILMENT, "o-1", 30))
    empty = await busline("sagas", "list", "--stale", "2h", "--saga", BILLING, store=store_url)
    assert empty.returncode == 0
    assert empty.stdout == "no saga instances (saga shop.billing, not updated for 2h 0m)\n"
    assert (await busline("sagas", "--json", "list", "--stale", "1h", store=store_url)).stdout == (
        "[]\n"
    )


async def test_show_prints_state_timeouts_history_and_compensations(store_url):
    now = time.time()
    instance = record(FULFILMENT, "o-1", 5 * MINUTE, items=["book"], paid=True)
    await insert(store_url, instance, record(FULFILMENT, "o-10", 60))
    steps = [
        SagaStep(new_message_id(), f"shop.{name}", now - age, outcome)
        for name, age, outcome in (
            ("OrderPlaced", 20 * MINUTE, "started"),
            ("PaymentTaken", 5 * MINUTE, "updated"),
        )
    ]
    store = open_store(store_url)
    await store.open()
    try:
        async with store.transaction() as tx:
            instance.version, instance.compensations = 1, b'[{"type": "shop.Refund"}]'
            assert await tx.update_saga(instance, expected_version=1)
            for step in steps:
                await tx.add_saga_step(FULFILMENT, "o-1", step)
        timeout_id = await schedule(store, f"{FULFILMENT}/o-1/shipping", now + 15 * MINUTE + 30)
        # Another instance's timeout, whose key the prefix ".../o-1/" must not take in.
        await schedule(store, f"{FULFILMENT}/o-10/shipping", now + MINUTE)
    finally:
        await store.close()

    shown = await busline("sagas", "show", "o-1", "--store", store_url)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "status:     running\nversion:    2\n" in text
    assert 'state:\n  {\n    "items": [\n      "book"\n    ],\n    "paid": true\n  }\n' in text
    assert f"pending timeouts:\n  shop.ShippingTimeout  {timeout_id}  due in 15m " in text
    handled = text.split("messages handled:\n")[1].split("compensations:")[0].splitlines()
    assert [line.split()[:2] for line in handled] == [[s.message_id, s.message_type] for s in steps]
    assert [line.split()[-1] for line in handled] == ["started", "updated"]
    assert text.endswith('compensations:\n  [\n    {\n      "type": "shop.Refund"\n    }\n  ]\n')

    as_json = json.loads((await busline("sagas", "show", "--json", "o-1", store=store_url)).stdout)
    assert as_json["state"] == {"items": ["book"], "paid": True}
    assert [t["message_id"] for t in as_json["timeouts"]] == [timeout_id]
    assert [s["outcome"] for s in as_json["history"]] == ["started", "updated"]
    assert as_json["compensations"] == [{"type": "shop.Refund"}]

    quiet = await busline("sagas", "show", "o-10", "--saga", FULFILMENT, store=store_url)
    assert "messages handled: none" in quiet.stdout
    assert "pending timeouts:\n  shop.ShippingTimeout" in quiet.stdout


async def schedule(store, key: str, due_at: float) -> str:
    """Commit a scheduled ShippingTimeout under ``key``, as the saga runtime would; its id."""
    tx_id, message_id = new_message_id(), new_message_id()
    envelope = Envelope(message_id, "shop.ShippingTimeout", b"{}", message_id, message_id)
    async with store.transaction() as tx:
        await tx.add_outbox(
            transaction_values(tx_id, "shop", 1, time.time(), due_at),
            [outbox_values(tx_id, 0, MessageKind.COMMAND, "shop", envelope, time.time())],
            schedule_key=key,
        )
    return message_id


async def test_show_says_when_a_key_is_ambiguous_or_missing(store_url):
    await insert(store_url, record(FULFILMENT, "o-1", 60), record(BILLING, "o-1", 60))
    ambiguous = await busline("sagas", "show", "o-1", store=store_url)
    assert ambiguous.returncode == 1
    assert ambiguous.stdout == ""
    assert ambiguous.stderr == (
        "busline sagas: key 'o-1' has instances of several sagas: shop.billing, shop.fulfilment;"
        " give --saga\n"
    )
    chosen = await busline("sagas", "show", "o-1", "--saga", BILLING, store=store_url)
    assert chosen.returncode == 0
    assert chosen.stdout.startswith("saga:       shop.billing\nkey:        o-1\n")

    for argv in (("o-2",), ("o-2", "--saga", BILLING)):
        missing = await busline("sagas", "show", *argv, "--store", store_url)
        assert missing.returncode == 1
        assert missing.stderr.startswith("busline sagas: no saga instance with key 'o-2'")
        assert missing.stderr.count("\n") == 1


async def test_failures_are_one_masked_line_and_nothing_is_created(tmp_path):
    missing = f"sqlite:///{tmp_path}/none.db"
    result = await busline("sagas", "list", "--store", missing)
    assert (result.returncode, result.stdout) == (1, "")
    assert "no such database file" in result.stderr
    assert not (tmp_path / "none.db").exists()

    unreachable = await busline("sagas", "show", "o-1", store=SECRET_URL)
    assert unreachable.returncode == 1
    assert unreachable.stderr.count("\n") == 1
    assert "busline:***@127.0.0.1:1" in unreachable.stderr


async def test_a_database_older_than_the_saga_tables_is_read_not_migrated(store_url):
    await database_at_version_2(store_url)
    result = await busline("sagas", "list", store=store_url)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "busline sagas: the database's busline schema is at version 2, older than the saga "
        "tables (4): start a bus of this busline on it to migrate it (busline sagas only reads)\n"
    )
    store = open_store(store_url)
    await store.open(migrate=False)
    try:
        assert await store.schema_version() == 2
    finally:
        await store.close()


@pytest.mark.parametrize(
    "argv",
    [
        ("sagas", "list"),  # no store at all
        ("sagas", "list", "--store", SECRET_URL, "--stale", "15x"),
        ("sagas", "list", "--store", SECRET_URL, "--status", "paused"),
        ("sagas", "list", "--store", SECRET_URL, "--limit", "0"),
        ("sagas", "list", "--store", SECRET_URL, "--stale", "-5m"),
        ("sagas", "--store", SECRET_URL, "show"),
    ],
)
async def test_usage_errors_are_status_2_and_one_line(argv):
    result = await busline(*argv)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1
