"""busline's tables and their versioned migrations, both dialects side by side.

Every table is prefixed ``busline_`` so it can live in the application's own database. Migrations
are applied in order at start-up, in one transaction serialised between instances, recorded in
``busline_schema_version``; applying them again is a no-op. Append new migrations (saga state
will be version 2); never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from busline.stores.base import StoreError


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step, written once per dialect."""

    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


VERSION_TABLE_SQLITE = """
CREATE TABLE IF NOT EXISTS busline_schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""

VERSION_TABLE_POSTGRES = """
CREATE TABLE IF NOT EXISTS busline_schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)"""

#: The envelope and routing columns of an outbox row, in the order the stores insert them.
OUTBOX_COLUMNS = (
    "tx_id",
    "position",
    "kind",
    "destination",
    "message_id",
    "message_type",
    "correlation_id",
    "conversation_id",
    "causation_id",
    "idempotency_key",
    "attempt",
    "sent_at",
    "source",
    "content_type",
    "headers",
    "body",
    "created_at",
    "available_at",
)

#: Columns read back for dispatch: the row id first, then as above, then the failure count.
OUTBOX_READ_COLUMNS = ("id", *OUTBOX_COLUMNS, "attempts")

_OUTBOX_SQLITE = """
CREATE TABLE busline_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    destination TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    causation_id TEXT,
    idempotency_key TEXT,
    attempt INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    source TEXT NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    available_at REAL NOT NULL,
    dispatched_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (tx_id, position)
)"""

_OUTBOX_POSTGRES = """
CREATE TABLE busline_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    destination TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    causation_id TEXT,
    idempotency_key TEXT,
    attempt INTEGER NOT NULL,
    sent_at DOUBLE PRECISION NOT NULL,
    source TEXT NOT NULL,
    content_type TEXT NOT NULL,
    headers JSONB NOT NULL,
    body BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    available_at DOUBLE PRECISION NOT NULL,
    dispatched_at DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (tx_id, position)
)"""

_INBOX = """
CREATE TABLE busline_inbox (
    consumer TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    processed_at {real} NOT NULL,
    PRIMARY KEY (consumer, idempotency_key)
)"""

_INDEXES = (
    "CREATE INDEX busline_outbox_pending ON busline_outbox (source, id)"
    " WHERE dispatched_at IS NULL",
    "CREATE INDEX busline_outbox_dispatched ON busline_outbox (dispatched_at)"
    " WHERE dispatched_at IS NOT NULL",
    "CREATE INDEX busline_inbox_processed_at ON busline_inbox (processed_at)",
)

_PENDING_BY_TRANSACTION = (
    "CREATE INDEX busline_outbox_pending_tx ON busline_outbox (tx_id, position)"
    " WHERE dispatched_at IS NULL"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "outbox and inbox",
        sqlite=(_OUTBOX_SQLITE, _INBOX.format(real="REAL"), *_INDEXES),
        postgres=(_OUTBOX_POSTGRES, _INBOX.format(real="DOUBLE PRECISION"), *_INDEXES),
    ),
    Migration(
        2,
        "index the pending rows of each transaction for the relay's claim",
        # The claim asks, for each candidate row, whether an earlier row of its transaction is
        # still pending. Without this index PostgreSQL, lacking statistics on a fresh table,
        # scanned every pending row per candidate: 109 ms per claim with 5,000 pending (the
        # state after an outage), 2 ms with it.
        sqlite=(_PENDING_BY_TRANSACTION,),
        postgres=(_PENDING_BY_TRANSACTION,),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def pending_migrations(applied: set[int]) -> list[Migration]:
    """The migrations not yet in ``applied``, in order; refuses a schema newer than this code."""
    newest = max(applied, default=0)
    if newest > LATEST_VERSION:
        raise StoreError(
            f"the database's busline schema is at version {newest}, newer than this busline "
            f"(which knows up to {LATEST_VERSION}); upgrade busline"
        )
    return [m for m in MIGRATIONS if m.version not in applied]
