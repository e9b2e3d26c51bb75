"""The tables of migration 4: saga instances, their steps, and the key of a scheduled outbox
transaction (see :mod:`busline.stores.sagas`). Kept apart from :mod:`busline.stores.schema`,
which applies them, only for size; like every shipped migration, never edit them.
"""

from __future__ import annotations

#: ``busline_sagas``, with the dialect's binary and floating point types to fill in.
SAGAS = """
CREATE TABLE busline_sagas (
    saga TEXT NOT NULL,
    key TEXT NOT NULL,
    state {blob} NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    compensations {blob} NOT NULL,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    completed_at {real},
    PRIMARY KEY (saga, key)
)"""

SAGA_STEPS_SQLITE = """
CREATE TABLE busline_saga_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    saga TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    handled_at REAL NOT NULL,
    outcome TEXT NOT NULL
)"""

SAGA_STEPS_POSTGRES = """
CREATE TABLE busline_saga_steps (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    handled_at DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL
)"""

SAGA_INDEXES = (
    # ``busline sagas`` lists the stalest instances of a status first (stuck ones).
    "CREATE INDEX busline_sagas_stale ON busline_sagas (status, updated_at)",
    # The purge of completed instances kept for ``saga_retention``.
    "CREATE INDEX busline_sagas_completed ON busline_sagas (completed_at)"
    " WHERE completed_at IS NOT NULL",
    "CREATE INDEX busline_saga_steps_instance ON busline_saga_steps (saga, key, id)",
)

# A scheduled message (a saga timeout) is an outbox transaction with a key; one pending per key.
# Keys are compared in code point order (SQLite's BINARY, PostgreSQL's "C" collation) so that a
# prefix search is a range scan of this index whatever the database's collation.
SCHEDULE_KEY_SQLITE = "ALTER TABLE busline_outbox_transactions ADD COLUMN schedule_key TEXT"
SCHEDULE_KEY_POSTGRES = (
    'ALTER TABLE busline_outbox_transactions ADD COLUMN schedule_key TEXT COLLATE "C"'
)
SCHEDULED_INDEX = (
    "CREATE UNIQUE INDEX busline_outbox_transactions_scheduled"
    " ON busline_outbox_transactions (schedule_key)"
    " WHERE schedule_key IS NOT NULL AND dispatched_at IS NULL"
)
