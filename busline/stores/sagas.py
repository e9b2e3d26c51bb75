"""Persistence of sagas: their records, the steps they took, their scheduled timeouts.

A saga instance is one row of ``busline_sagas``, keyed by the saga's name and its correlation
key, written with optimistic concurrency: an update names the version it read and fails (returns
``False``) when another transaction has written a newer one since. Its state and recorded
compensations are JSON the store keeps without reading. ``busline_saga_steps`` lists the messages
each instance handled (what ``busline sagas show`` prints). A saga's timeout is an outbox
transaction with a ``schedule_key``: the relay sends it at its ``available_at`` like any other, and
requesting the same key again replaces the one still pending.

This module holds the records and the SQL both stores share (``?`` placeholders);
:mod:`busline.stores.saga_sqlite` and :mod:`busline.stores.saga_postgres` run it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from busline.stores.schema import TRANSACTION_COLUMNS


@dataclass(slots=True)
class SagaRecord:
    """One saga instance as stored."""

    #: The saga's stable name, e.g. ``"shop.fulfilment"``.
    saga: str
    #: The correlation key's value, e.g. an order id.
    key: str
    #: The state struct as JSON (opaque to the store).
    state: bytes
    #: 1 when inserted, +1 per successful update.
    version: int
    #: ``"running"``, ``"compensating"`` or ``"completed"`` (opaque text to the store).
    status: str
    #: The recorded undo messages as JSON (opaque to the store).
    compensations: bytes
    created_at: float
    updated_at: float
    completed_at: float | None = None


@dataclass(slots=True)
class SagaStep:
    """One message handled by a saga instance."""

    message_id: str
    message_type: str
    handled_at: float
    #: ``"started"``, ``"updated"``, ``"completed"``, ``"compensated"``, ... (opaque text).
    outcome: str


@dataclass(slots=True)
class ScheduledMessage:
    """A scheduled outbox message (a saga timeout) not sent yet."""

    schedule_key: str
    message_type: str
    message_id: str
    #: When the relay sends it (later after a failed attempt: its retry time).
    due_at: float


#: The columns of ``busline_sagas`` in :class:`SagaRecord` field order.
SAGA_COLUMNS = (
    "saga",
    "key",
    "state",
    "version",
    "status",
    "compensations",
    "created_at",
    "updated_at",
    "completed_at",
)

SELECT_SAGA = f"SELECT {', '.join(SAGA_COLUMNS)} FROM busline_sagas WHERE saga = ? AND key = ?"

#: A concurrent insert of the same key waits for the other transaction's outcome, then does
#: nothing if it committed: never a unique violation.
INSERT_SAGA = (
    f"INSERT INTO busline_sagas ({', '.join(SAGA_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in SAGA_COLUMNS)}) ON CONFLICT (saga, key) DO NOTHING"
)

UPDATE_SAGA = """
UPDATE busline_sagas
SET state = ?, status = ?, compensations = ?, updated_at = ?, completed_at = ?, version = ?
WHERE saga = ? AND key = ? AND version = ?"""

DELETE_SAGA = "DELETE FROM busline_sagas WHERE saga = ? AND key = ? AND version = ?"
DELETE_STEPS = "DELETE FROM busline_saga_steps WHERE saga = ? AND key = ?"

INSERT_STEP = (
    "INSERT INTO busline_saga_steps (saga, key, message_id, message_type, handled_at, outcome) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

#: Steps in the order they were written (the instance's version serialises its writers).
SELECT_STEPS = (
    "SELECT message_id, message_type, handled_at, outcome FROM busline_saga_steps "
    "WHERE saga = ? AND key = ? ORDER BY id"
)

#: An outbox transaction that is a scheduled message: the usual columns, then its key.
INSERT_SCHEDULED_TRANSACTION = (
    f"INSERT INTO busline_outbox_transactions ({', '.join(TRANSACTION_COLUMNS)}, schedule_key) "
    f"VALUES ({', '.join('?' for _ in TRANSACTION_COLUMNS)}, ?)"
)

#: The pending scheduled transaction a new one with the same key replaces, and its rows.
_REPLACED = "FROM busline_outbox_transactions WHERE schedule_key = ? AND dispatched_at IS NULL"
REPLACE_ROWS = f"DELETE FROM busline_outbox WHERE tx_id IN (SELECT tx_id {_REPLACED})"
REPLACE_TRANSACTION = f"DELETE {_REPLACED}"

#: Pending scheduled transactions whose key lies in a range (``schedule_key >= low AND
#: schedule_key < high``: a prefix, see :func:`prefix_bounds`), answered from the partial unique
#: index; :func:`scheduled_where` appends the upper bound when there is one.
SCHEDULED_WHERE = "t.dispatched_at IS NULL AND t.schedule_key IS NOT NULL AND t.schedule_key >= ?"

#: Their messages not sent yet, soonest first; the store completes the condition.
SELECT_SCHEDULED = (
    "SELECT t.schedule_key, o.message_type, o.message_id, t.available_at "
    "FROM busline_outbox_transactions t "
    "JOIN busline_outbox o ON o.tx_id = t.tx_id AND o.position >= t.sent WHERE {where} "
    "ORDER BY t.available_at, t.seq, o.position"
)

#: The rows of the pending scheduled transactions, then those transactions: a cancellation.
CANCEL_ROWS = (
    "DELETE FROM busline_outbox WHERE tx_id IN "
    "(SELECT t.tx_id FROM busline_outbox_transactions t WHERE {where})"
)
CANCEL_TRANSACTIONS = "DELETE FROM busline_outbox_transactions AS t WHERE {where}"

#: Completed instances kept past their retention, at most so many: what a purge removes.
EXPIRED_SAGAS = (
    "SELECT saga, key FROM busline_sagas "
    "WHERE completed_at IS NOT NULL AND completed_at < ? ORDER BY completed_at LIMIT ?"
)

#: Steps and instances in a list of ``(saga, key)`` pairs: :func:`pairs_list` completes it.
STEPS_OF = "DELETE FROM busline_saga_steps WHERE (saga, key) IN "
SAGAS_OF = "DELETE FROM busline_sagas WHERE (saga, key) IN "


def pairs_list(count: int) -> str:
    """``(VALUES (?, ?), ...)``: ``count`` pairs for a row-value ``IN``."""
    return "(VALUES " + ", ".join("(?, ?)" for _ in range(count)) + ")"


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """``(low, high)`` such that a text starts with ``prefix`` exactly when ``low <= text <
    high`` in code point order (``high`` is ``None`` when no text is above them all).

    Both stores compare schedule keys in code point order (SQLite's BINARY collation, the
    ``"C"`` collation of the PostgreSQL column), so a prefix search is an index range scan with
    any parameter, where ``LIKE`` would need the pattern at planning time (and escaping).
    """
    stem = prefix
    while stem:
        last = ord(stem[-1])
        if last < sys.maxunicode:
            # Surrogates cannot be stored: the code point after U+D7FF that can is U+E000.
            following = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1
            return prefix, stem[:-1] + chr(following)
        stem = stem[:-1]
    return prefix, None


def saga_filters(
    saga: str | None, status: str | None, updated_before: float | None
) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (possibly empty) and parameters of a saga listing."""
    conditions: list[str] = []
    params: list[Any] = []
    for column, value in (("saga =", saga), ("status =", status), ("updated_at <", updated_before)):
        if value is not None:
            conditions.append(f"{column} ?")
            params.append(value)
    return (f" WHERE {' AND '.join(conditions)}" if conditions else ""), params


def list_sagas_sql(where: str) -> str:
    """A listing of instances, stalest first (ties in a stable order), ``LIMIT ?`` last."""
    return (
        f"SELECT {', '.join(SAGA_COLUMNS)} FROM busline_sagas{where} "
        "ORDER BY updated_at, saga, key LIMIT ?"
    )


def saga_values(record: SagaRecord) -> tuple[Any, ...]:
    """A record's values in :data:`SAGA_COLUMNS` order."""
    return (
        record.saga,
        record.key,
        bytes(record.state),
        record.version,
        record.status,
        bytes(record.compensations),
        record.created_at,
        record.updated_at,
        record.completed_at,
    )


def update_values(record: SagaRecord, expected_version: int) -> tuple[Any, ...]:
    """The parameters of :data:`UPDATE_SAGA`."""
    return (
        bytes(record.state),
        record.status,
        bytes(record.compensations),
        record.updated_at,
        record.completed_at,
        expected_version + 1,
        record.saga,
        record.key,
        expected_version,
    )


def step_values(saga: str, key: str, step: SagaStep) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_STEP`."""
    return (saga, key, step.message_id, step.message_type, step.handled_at, step.outcome)


def saga_from_row(row: Sequence[Any]) -> SagaRecord:
    """Rebuild a record read in :data:`SAGA_COLUMNS` order."""
    saga, key, state, version, status, compensations, created, updated, completed = row
    return SagaRecord(
        saga=saga,
        key=key,
        state=bytes(state),
        version=version,
        status=status,
        compensations=bytes(compensations),
        created_at=created,
        updated_at=updated,
        completed_at=completed,
    )


def step_from_row(row: Sequence[Any]) -> SagaStep:
    """Rebuild a step read with :data:`SELECT_STEPS`."""
    message_id, message_type, handled_at, outcome = row
    return SagaStep(message_id, message_type, handled_at, outcome)


def scheduled_from_row(row: Sequence[Any]) -> ScheduledMessage:
    """Rebuild a scheduled message read with :data:`SELECT_SCHEDULED`."""
    schedule_key, message_type, message_id, due_at = row
    return ScheduledMessage(schedule_key, message_type, message_id, due_at)


def checked_prefix(key_prefix: str) -> str:
    """``key_prefix`` for a cancellation: an empty one, which would cancel every saga's
    timeouts, is refused as a caller's bug."""
    if not key_prefix:
        raise ValueError("cancel_scheduled needs a non-empty key prefix")
    return key_prefix


def scheduled_where(prefix: str) -> tuple[str, list[str]]:
    """The condition on ``t`` (a ``busline_outbox_transactions``) selecting the pending scheduled
    transactions whose key starts with ``prefix``, and its parameters."""
    low, high = prefix_bounds(prefix)
    if high is None:
        return SCHEDULED_WHERE, [low]
    return SCHEDULED_WHERE + " AND t.schedule_key < ?", [low, high]


__all__ = ["SagaRecord", "SagaStep", "ScheduledMessage"]
