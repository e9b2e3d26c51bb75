"""busline's tables and their versioned migrations, both dialects side by side.

Every table is prefixed ``busline_`` so it can live in the application's own database. Migrations
are applied in order at start-up, in one transaction serialised between instances, recorded in
``busline_schema_version``; applying them again is a no-op. Append new migrations; never edit
one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from busline.stores.errors import StoreError
from busline.stores.saga_schema import (
    SAGA_INDEXES,
    SAGA_STEPS_POSTGRES,
    SAGA_STEPS_SQLITE,
    SAGAS,
    SCHEDULE_KEY_POSTGRES,
    SCHEDULE_KEY_SQLITE,
    SCHEDULED_INDEX,
)


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

#: The columns of an outbox transaction, in the order the stores insert them (``sent`` starts at
#: 0, ``dispatched_at`` empty, ``attempts`` 0).
TRANSACTION_COLUMNS = ("tx_id", "source", "messages", "created_at", "available_at")

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
)

#: Columns read back for dispatch: the row id first, then as above.
OUTBOX_READ_COLUMNS = ("id", *OUTBOX_COLUMNS)

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

# ``seq`` orders transactions oldest first (their ids are random).
_TRANSACTIONS_SQLITE = """
CREATE TABLE busline_outbox_transactions (
    seq INTEGER PRIMARY KEY,
    tx_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    messages INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    available_at REAL NOT NULL,
    dispatched_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
)"""

_TRANSACTIONS_POSTGRES = """
CREATE TABLE busline_outbox_transactions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    tx_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    messages INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    available_at DOUBLE PRECISION NOT NULL,
    dispatched_at DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
)"""

# Every transaction that has rows, with its progress: ``sent`` is its first row not dispatched
# (they go in order), ``available_at`` its lease or backoff, ``attempts``/``last_error`` those of
# the row at ``sent``. Rows of a transaction whose rows were deleted as sent
# (``outbox_retention=0``) start above position 0, hence MAX(position) + 1.
_TRANSACTIONS_FROM_ROWS = """
INSERT INTO busline_outbox_transactions
    (tx_id, source, messages, sent, created_at, available_at, dispatched_at, attempts, last_error)
SELECT tx_id, MIN(source), MAX(position) + 1,
       COALESCE(MIN(CASE WHEN dispatched_at IS NULL THEN position END), MAX(position) + 1),
       MIN(created_at),
       COALESCE(MAX(CASE WHEN dispatched_at IS NULL THEN available_at END), MAX(available_at)),
       CASE WHEN COUNT(*) = COUNT(dispatched_at) THEN MAX(dispatched_at) END,
       MAX(CASE WHEN dispatched_at IS NULL THEN attempts ELSE 0 END),
       MAX(CASE WHEN dispatched_at IS NULL THEN last_error END)
FROM busline_outbox GROUP BY tx_id ORDER BY MIN(id)"""

_TRANSACTION_INDEXES = (
    "CREATE INDEX busline_outbox_transactions_pending"
    " ON busline_outbox_transactions (source, seq) WHERE dispatched_at IS NULL",
    "CREATE INDEX busline_outbox_transactions_dispatched"
    " ON busline_outbox_transactions (dispatched_at) WHERE dispatched_at IS NOT NULL",
)

# Progress now lives on the transaction: the row itself is written once and deleted once.
_ROW_PROGRESS_OUT = (
    "DROP INDEX busline_outbox_pending",
    "DROP INDEX busline_outbox_dispatched",
    "DROP INDEX busline_outbox_pending_tx",
    "ALTER TABLE busline_outbox DROP COLUMN available_at",
    "ALTER TABLE busline_outbox DROP COLUMN dispatched_at",
    "ALTER TABLE busline_outbox DROP COLUMN attempts",
    "ALTER TABLE busline_outbox DROP COLUMN last_error",
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
    Migration(
        3,
        "track outbox progress per transaction instead of per row",
        # Marking a row dispatched rewrote the whole (wide) row and its index entries: on
        # PostgreSQL the relay's biggest database cost. A transaction's rows now stay as
        # written; a narrow row per transaction says how far its dispatch got. The relay claims
        # due transactions from its own small index instead of searching the rows for heads.
        sqlite=(
            _TRANSACTIONS_SQLITE,
            _TRANSACTIONS_FROM_ROWS,
            *_TRANSACTION_INDEXES,
            *_ROW_PROGRESS_OUT,
        ),
        postgres=(
            _TRANSACTIONS_POSTGRES,
            _TRANSACTIONS_FROM_ROWS,
            *_TRANSACTION_INDEXES,
            *_ROW_PROGRESS_OUT,
        ),
    ),
    Migration(
        4,
        "sagas, their steps, and scheduled outbox messages",
        sqlite=(
            SAGAS.format(blob="BLOB", real="REAL"),
            SAGA_STEPS_SQLITE,
            *SAGA_INDEXES,
            SCHEDULE_KEY_SQLITE,
            SCHEDULED_INDEX,
        ),
        postgres=(
            SAGAS.format(blob="BYTEA", real="DOUBLE PRECISION"),
            SAGA_STEPS_POSTGRES,
            *SAGA_INDEXES,
            SCHEDULE_KEY_POSTGRES,
            SCHEDULED_INDEX,
        ),
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
