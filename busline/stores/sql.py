"""The statements both stores run, written once with ``?`` placeholders.

SQLite takes them as they are; PostgreSQL through :func:`numbered` (``$1, $2, ...``). What only one
dialect can say (locking, array parameters) stays in that store's module.
"""

from __future__ import annotations

from busline.stores.rows import READ_COLUMNS_SQL
from busline.stores.schema import OUTBOX_COLUMNS


def numbered(sql: str) -> str:
    """Rewrite ``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (no ``?`` in literals here)."""
    parts = sql.split("?")
    out = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        out.append(f"${index}{part}")
    return "".join(out)


INSERT_OUTBOX = (
    f"INSERT INTO busline_outbox ({', '.join(OUTBOX_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in OUTBOX_COLUMNS)})"
)

INSERT_INBOX = (
    "INSERT INTO busline_inbox (consumer, idempotency_key, message_id, processed_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)

#: The first pending row of each of a service's transactions that is due, oldest first: a
#: transaction's later rows wait until the earlier ones are dispatched (per-transaction order).
SELECT_HEADS = """
SELECT o.tx_id FROM busline_outbox o
WHERE o.dispatched_at IS NULL AND o.source = ? AND o.available_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM busline_outbox p
    WHERE p.tx_id = o.tx_id AND p.position < o.position AND p.dispatched_at IS NULL)
ORDER BY o.id
LIMIT ?"""

SELECT_PENDING_OF = (
    f"SELECT {READ_COLUMNS_SQL} FROM busline_outbox WHERE dispatched_at IS NULL AND tx_id IN "
)

#: Every row of the given transactions (all sent), completed with the ``IN`` list by the store.
MARK_TRANSACTIONS = (
    "UPDATE busline_outbox SET dispatched_at = ? WHERE dispatched_at IS NULL AND tx_id IN "
)

MARK_SENT = "UPDATE busline_outbox SET dispatched_at = ? WHERE tx_id = ? AND position < ?"

#: With ``outbox_retention=0`` sent rows are deleted instead of marked: these take the place
#: of :data:`MARK_TRANSACTIONS`, :data:`MARK_SENT` and the relay's mark by id (no time
#: parameter).
DELETE_TRANSACTIONS = "DELETE FROM busline_outbox WHERE dispatched_at IS NULL AND tx_id IN "

DELETE_SENT = "DELETE FROM busline_outbox WHERE tx_id = ? AND position < ?"

NOTE_FAILURE = (
    "UPDATE busline_outbox SET attempts = attempts + 1, last_error = ?, available_at = ? "
    "WHERE id = ?"
)

NOTE_FAILURE_AT = (
    "UPDATE busline_outbox SET attempts = attempts + 1, last_error = ? "
    "WHERE tx_id = ? AND position = ?"
)

RELEASE_TRANSACTION = (
    "UPDATE busline_outbox SET available_at = ? WHERE tx_id = ? AND dispatched_at IS NULL"
)

PURGE_OUTBOX = """
DELETE FROM busline_outbox WHERE id IN (
  SELECT id FROM busline_outbox
  WHERE dispatched_at IS NOT NULL AND dispatched_at < ? LIMIT ?)"""

PURGE_INBOX = """
DELETE FROM busline_inbox WHERE (consumer, idempotency_key) IN (
  SELECT consumer, idempotency_key FROM busline_inbox WHERE processed_at < ? LIMIT ?)"""

STATS_PENDING = """
SELECT COUNT(*), MIN(created_at), COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0)
FROM busline_outbox WHERE dispatched_at IS NULL"""

STATS_LAST_ERROR = """
SELECT last_error FROM busline_outbox
WHERE dispatched_at IS NULL AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1"""

STATS_DISPATCHED = "SELECT COUNT(*) FROM busline_outbox WHERE dispatched_at IS NOT NULL"

STATS_INBOX = "SELECT COUNT(*) FROM busline_inbox"

SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM busline_schema_version"

APPLIED_VERSIONS = "SELECT version FROM busline_schema_version"

RECORD_VERSION = (
    "INSERT INTO busline_schema_version (version, description, applied_at) VALUES (?, ?, ?)"
)
