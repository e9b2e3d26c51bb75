"""Migration 3 moves outbox progress from the rows to a row per transaction: a database written
by busline before it keeps every pending message, in order, with its failures, and forgets none
of what was already dispatched."""

from __future__ import annotations

import json

from busline import StoreSettings
from busline.relay import Relay
from busline.stores import OutboxRow, open_store
from busline.stores.schema import (
    MIGRATIONS,
    VERSION_TABLE_POSTGRES,
    VERSION_TABLE_SQLITE,
)
from busline.testing import VirtualClock
from tests.stores.db import Db, query

#: Columns of an outbox row as versions 1 and 2 wrote them.
_V2_COLUMNS = (
    "tx_id, position, kind, destination, message_id, message_type, correlation_id, "
    "conversation_id, causation_id, idempotency_key, attempt, sent_at, source, content_type, "
    "headers, body, created_at, available_at, dispatched_at, attempts, last_error"
)


async def database_at_version_2(url: str) -> None:
    """The schema as busline left it before migration 3, with rows in every state."""
    postgres = not url.startswith("sqlite")
    async with Db(url) as db:
        await db.execute(VERSION_TABLE_POSTGRES if postgres else VERSION_TABLE_SQLITE)
        for migration in MIGRATIONS[:2]:
            for statement in migration.postgres if postgres else migration.sqlite:
                await db.execute(statement)
            await db.execute(
                "INSERT INTO busline_schema_version (version, description, applied_at) "
                "VALUES (?, ?, ?)",
                migration.version,
                migration.description,
                0.0,
            )

        async def row(tx: str, position: int, dispatched: float | None, **extra: object) -> None:
            message_id = f"{tx}-{position}"
            values = (
                tx,
                position,
                "command",
                "stores.Step",
                message_id,
                "stores.Step",
                message_id,
                message_id,
                None,
                None,
                1,
                1.0,
                "orders",
                "application/json",
                json.dumps({}),
                json.dumps({"batch": tx, "seq": position}).encode(),
                1.0,
                extra.get("available_at", 1.0),
                dispatched,
                extra.get("attempts", 0),
                extra.get("last_error"),
            )
            marks = ", ".join("?" for _ in values)
            await db.execute(
                f"INSERT INTO busline_outbox ({_V2_COLUMNS}) VALUES ({marks})", *values
            )

        # done: all sent; half: first of two sent; failed: first failed twice; fresh: none sent;
        # lean: its first row went and was deleted (outbox_retention=0), the second is pending.
        await row("done", 0, 5.0)
        await row("done", 1, 6.0)
        await row("half", 0, 5.0)
        await row("half", 1, None)
        await row(
            "failed", 0, None, attempts=2, last_error="ConnectionError: down", available_at=9.0
        )
        await row("failed", 1, None, available_at=9.0)
        await row("fresh", 0, None)
        await row("lean", 1, None)


async def test_pending_messages_survive_migration_3_in_order(store_url):
    await database_at_version_2(store_url)
    store = open_store(store_url, StoreSettings(relay_interval=1.0))
    await store.open()
    try:
        assert await store.schema_version() == 4  # migrated to the latest
        stats = await store.stats()
        assert (stats.pending, stats.failing, stats.dispatched) == (5, 1, 3)
        assert stats.last_error == "ConnectionError: down"
        sent: list[tuple[str, int]] = []

        async def send(row: OutboxRow) -> None:
            sent.append((row.tx_id, row.position))

        relay = Relay("orders", store, send, VirtualClock(start=2.0), StoreSettings())
        # "failed" backs off until 9.0; the others are due and go in order.
        assert await relay.run_once() == 3
        assert sorted(sent) == [("fresh", 0), ("half", 1), ("lean", 1)]
        relay = Relay("orders", store, send, VirtualClock(start=10.0), StoreSettings())
        assert await relay.run_once() == 2
        assert sent[3:] == [("failed", 0), ("failed", 1)]
        assert (await store.stats()).pending == 0
    finally:
        await store.close()
    dispatched = await query(
        store_url,
        "SELECT tx_id, dispatched_at FROM busline_outbox_transactions WHERE tx_id = ? OR tx_id = ?",
        "done",
        "half",
    )
    # "done" keeps the time of its last row; "half" was finished by the relay at 2.0.
    assert sorted(dispatched) == [("done", 6.0), ("half", 2.0)]
