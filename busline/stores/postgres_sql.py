"""The statements of the PostgreSQL store: the shared ones numbered (``$1, $2, ...``), and what
only PostgreSQL can say (row locks, array parameters, a transaction with its rows in one
statement)."""

from __future__ import annotations

import functools

from busline.stores import saga_postgres, sql
from busline.stores.schema import OUTBOX_COLUMNS, TRANSACTION_COLUMNS

INSERT_OUTBOX = sql.numbered(sql.INSERT_OUTBOX)
INSERT_TRANSACTION = sql.numbered(sql.INSERT_TRANSACTION)
INSERT_INBOX = sql.numbered(sql.INSERT_INBOX)
#: Due transactions, locked (skipping those other relays hold) until the claim ends, with their
#: unsent rows, in one statement.
CLAIM = f"""
WITH due AS ({sql.numbered(sql.SELECT_DUE)} FOR UPDATE SKIP LOCKED)
SELECT {sql.ROW_COLUMNS}, due.attempts
FROM due JOIN busline_outbox o ON o.tx_id = due.tx_id AND o.position >= due.sent"""
MARK_DISPATCHED = sql.numbered(sql.MARK_DISPATCHED).removesuffix("IN ") + "= ANY($2::text[])"
ADVANCE = sql.numbered(sql.ADVANCE)
NOTE_FAILURE = sql.numbered(sql.NOTE_FAILURE)
DELETE_ROWS_OF = sql.DELETE_ROWS_OF.removesuffix("IN ") + "= ANY($1::text[])"
DELETE_TRANSACTIONS = sql.DELETE_TRANSACTIONS.removesuffix("IN ") + "= ANY($1::text[])"
DELETE_SENT_ROWS = sql.numbered(sql.DELETE_SENT_ROWS)
#: Transactions and their rows go together, in one statement: a concurrent purge by another
#: instance can then never leave rows without their transaction. ``= ANY(ARRAY(...))`` looks each
#: expired transaction up by key; ``IN (...)`` let the planner scan the whole table per batch.
PURGE_OUTBOX = f"""
WITH expired AS (
  DELETE FROM busline_outbox_transactions
  WHERE tx_id = ANY(ARRAY({sql.numbered(sql.EXPIRED_TRANSACTIONS)})) RETURNING tx_id)
DELETE FROM busline_outbox WHERE tx_id IN (SELECT tx_id FROM expired)"""
PURGE_INBOX = sql.numbered(sql.PURGE_INBOX)
RECORD_VERSION = sql.numbered(sql.RECORD_VERSION)
STATS_PENDING = sql.numbered(sql.STATS_PENDING)
STATS_SCHEDULED = sql.numbered(sql.STATS_SCHEDULED)


#: Most rows inserted with their transaction in one statement; more take two round trips.
ONE_STATEMENT_ROWS = 16


@functools.lru_cache(maxsize=2 * ONE_STATEMENT_ROWS)
def insert_with_rows(rows: int, scheduled: bool = False) -> str:
    """A transaction row and ``rows`` outbox rows in one statement: a handler's commit costs
    one round trip for its outbox, whatever it sent (a scheduled transaction's values end with
    its key)."""
    first = len(TRANSACTION_COLUMNS) + 1 + scheduled
    width = len(OUTBOX_COLUMNS)
    groups = ", ".join(
        "(" + ", ".join(f"${first + row * width + column}" for column in range(width)) + ")"
        for row in range(rows)
    )
    insert = saga_postgres.INSERT_SCHEDULED_TRANSACTION if scheduled else INSERT_TRANSACTION
    return transaction_with_rows(insert, groups)


def transaction_with_rows(transaction_insert: str, row_values: str) -> str:
    """The insert of an outbox transaction (``transaction_insert``, with its values) and of its
    rows (``row_values``: ``(...), (...)``), parameters or literals, as one statement."""
    return (
        f"WITH tx AS ({transaction_insert}) "
        f"INSERT INTO busline_outbox ({', '.join(OUTBOX_COLUMNS)}) VALUES {row_values}"
    )
