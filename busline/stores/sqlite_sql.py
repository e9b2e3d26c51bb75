"""Statements only the SQLite store runs: the temporary view through which one ``executemany``
writes an outbox transaction with its rows (a trigger writes both tables)."""

from __future__ import annotations

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
