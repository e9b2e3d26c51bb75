"""Statements only the SQLite store runs: the temporary view through which one ``executemany``
writes an outbox transaction with its rows, and the dispatch mark as one script.

Each statement the SQLite store runs is a trip to aiosqlite's thread, so these fold several
statements into one trip, with public means only: a trigger, and ``executescript``.
"""

from __future__ import annotations

from busline.stores import sql
from busline.stores.errors import StoreError
from busline.stores.schema import OUTBOX_COLUMNS, TRANSACTION_COLUMNS

#: A temporary view (of this connection only, not in the database file) whose trigger writes an
#: outbox transaction and its rows from one ``executemany``: each row's values followed by its
#: transaction's (the transaction row is written with the row at position 0).
TX_VALUES = tuple(f"tx_{column}" for column in TRANSACTION_COLUMNS[1:])
OUTBOX_WRITE_VIEW = (
    "CREATE TEMP VIEW IF NOT EXISTS busline_outbox_write AS SELECT "
    + ", ".join([*OUTBOX_COLUMNS, *(f"NULL AS {name}" for name in TX_VALUES)])
    + " FROM busline_outbox WHERE 0"
)
OUTBOX_WRITE_TRIGGER = f"""
CREATE TEMP TRIGGER IF NOT EXISTS busline_outbox_write INSTEAD OF INSERT ON busline_outbox_write
BEGIN
  INSERT INTO busline_outbox_transactions ({", ".join(TRANSACTION_COLUMNS)})
    SELECT NEW.tx_id, {", ".join(f"NEW.{name}" for name in TX_VALUES)} WHERE NEW.position = 0;
  INSERT INTO busline_outbox ({", ".join(OUTBOX_COLUMNS)})
    VALUES ({", ".join(f"NEW.{column}" for column in OUTBOX_COLUMNS)});
END"""
INSERT_OUTBOX_WRITE = (
    f"INSERT INTO busline_outbox_write ({', '.join([*OUTBOX_COLUMNS, *TX_VALUES])}) "
    f"VALUES ({', '.join('?' for _ in (*OUTBOX_COLUMNS, *TX_VALUES))})"
)


def finish_script(tx_ids: list[str], now: float, keep_sent: bool) -> str:
    """The dispatch mark (or, without kept rows, the deletion) of ``tx_ids`` as one script that
    begins and commits its transaction, with literal values (a script takes no parameters).
    Only busline's own values go in: transaction ids (hex digits, checked) and a float."""
    for tx_id in tx_ids:
        if not tx_id.isalnum() or not tx_id.isascii():
            raise StoreError(f"unexpected outbox transaction id {tx_id!r}")
    listed = ", ".join(f"'{tx_id}'" for tx_id in tx_ids)
    if keep_sent:
        statements = [f"{sql.MARK_DISPATCHED.replace('?', repr(float(now)))}({listed})"]
    else:
        statements = [f"{sql.DELETE_ROWS_OF}({listed})", f"{sql.DELETE_TRANSACTIONS}({listed})"]
    return "BEGIN IMMEDIATE;\n" + ";\n".join(statements) + ";\nCOMMIT;"
