"""The statements both stores run, written once with ``?`` placeholders.

SQLite takes them as they are; PostgreSQL through :func:`numbered` (``$1, $2, ...``). What only one
dialect can say (locking, array parameters) stays in that store's module.
"""

from __future__ import annotations

from busline.stores.schema import OUTBOX_COLUMNS, OUTBOX_READ_COLUMNS, TRANSACTION_COLUMNS


def numbered(sql: str) -> str:
    """Rewrite ``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (no ``?`` in literals here)."""
    parts = sql.split("?")
    out = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        out.append(f"${index}{part}")
    return "".join(out)


def affected(status: str) -> int:
    """Rows affected, from a PostgreSQL command status such as ``INSERT 0 1`` or ``DELETE 3``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


INSERT_OUTBOX = (
    f"INSERT INTO busline_outbox ({', '.join(OUTBOX_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in OUTBOX_COLUMNS)})"
)

INSERT_TRANSACTION = (
    f"INSERT INTO busline_outbox_transactions ({', '.join(TRANSACTION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in TRANSACTION_COLUMNS)})"
)

INSERT_INBOX = (
    "INSERT INTO busline_inbox (consumer, idempotency_key, message_id, processed_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)

#: A service's due transactions, oldest first: ``(tx_id, sent, attempts)``.
SELECT_DUE = """
SELECT tx_id, sent, attempts FROM busline_outbox_transactions
WHERE dispatched_at IS NULL AND source = ? AND available_at <= ?
ORDER BY seq
LIMIT ?"""

#: The read columns of an outbox row aliased ``o``, as :func:`~busline.stores.rows.row_from_record`
#: takes them (followed by its transaction's failure count).
ROW_COLUMNS = ", ".join(f"o.{column}" for column in OUTBOX_READ_COLUMNS)

#: The rows of the given transactions still to send, with their transaction's failure count;
#: the store completes the ``IN`` list.
SELECT_UNSENT_OF = (
    f"SELECT {ROW_COLUMNS}, t.attempts "
    "FROM busline_outbox o JOIN busline_outbox_transactions t ON t.tx_id = o.tx_id "
    "WHERE o.position >= t.sent AND o.tx_id IN "
)

#: Every message of the given transactions was sent; the store completes the ``IN`` list.
MARK_DISPATCHED = (
    "UPDATE busline_outbox_transactions SET sent = messages, dispatched_at = ? "
    "WHERE dispatched_at IS NULL AND tx_id IN "
)

#: A transaction's messages before ``sent`` went; the rest is due again from ``available_at``.
ADVANCE = "UPDATE busline_outbox_transactions SET sent = ?, available_at = ? WHERE tx_id = ?"

#: Transactions due (again) from a time: a lease taken or ended. The store completes the list.
RELEASE = "UPDATE busline_outbox_transactions SET available_at = ? WHERE tx_id IN "

#: As :data:`ADVANCE`, after the message at ``sent`` failed.
NOTE_FAILURE = (
    "UPDATE busline_outbox_transactions "
    "SET sent = ?, available_at = ?, attempts = attempts + 1, last_error = ? WHERE tx_id = ?"
)

#: With ``outbox_retention=0`` sent rows are deleted instead of kept: a finished transaction
#: with all its rows (the store completes the ``IN`` lists), the sent rows of an unfinished one.
DELETE_ROWS_OF = "DELETE FROM busline_outbox WHERE tx_id IN "
DELETE_TRANSACTIONS = "DELETE FROM busline_outbox_transactions WHERE tx_id IN "
DELETE_SENT_ROWS = "DELETE FROM busline_outbox WHERE tx_id = ? AND position < ?"

#: Transactions dispatched before a time, at most so many: what a purge removes.
EXPIRED_TRANSACTIONS = (
    "SELECT tx_id FROM busline_outbox_transactions "
    "WHERE dispatched_at IS NOT NULL AND dispatched_at < ? LIMIT ?"
)

PURGE_INBOX = """
DELETE FROM busline_inbox WHERE (consumer, idempotency_key) IN (
  SELECT consumer, idempotency_key FROM busline_inbox WHERE processed_at < ? LIMIT ?)"""

#: A scheduled message (a saga timeout) waiting for its due time, given as the parameter: not
#: backlog. Once overdue, or failing, it is.
_WAITING = "schedule_key IS NOT NULL AND attempts = 0 AND available_at > ?"

#: The oldest pending message's age counts from its due time when it was scheduled (a timeout
#: scheduled for tomorrow is not a day late when it is due); once it failed, from its commit.
STATS_PENDING = f"""
SELECT COALESCE(SUM(messages - sent), 0),
       MIN(CASE WHEN schedule_key IS NOT NULL AND attempts = 0 THEN available_at
                ELSE created_at END),
       COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0)
FROM busline_outbox_transactions WHERE dispatched_at IS NULL AND NOT ({_WAITING})"""

STATS_SCHEDULED = f"""
SELECT COALESCE(SUM(messages - sent), 0)
FROM busline_outbox_transactions WHERE dispatched_at IS NULL AND {_WAITING}"""

STATS_LAST_ERROR = """
SELECT last_error FROM busline_outbox_transactions
WHERE dispatched_at IS NULL AND last_error IS NOT NULL ORDER BY seq DESC LIMIT 1"""

STATS_DISPATCHED = """
SELECT COUNT(*) FROM busline_outbox o
JOIN busline_outbox_transactions t ON t.tx_id = o.tx_id WHERE o.position < t.sent"""

STATS_INBOX = "SELECT COUNT(*) FROM busline_inbox"

SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM busline_schema_version"

APPLIED_VERSIONS = "SELECT version FROM busline_schema_version"

RECORD_VERSION = (
    "INSERT INTO busline_schema_version (version, description, applied_at) VALUES (?, ?, ?)"
)
