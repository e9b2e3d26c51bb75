"""The PostgreSQL store's two statements of every handler's transaction, prepared once per
connection: the inbox record and an outbox transaction with one row.

busline sends them in the simple query protocol, with ``BEGIN``, savepoints and ``COMMIT`` in
the same round trip (see :mod:`busline.stores.pg_session`), so they cannot be protocol-level
prepared statements; as literal SQL the server parsed and planned them at every transaction.
SQL-level ``PREPARE`` (when the pool opens a connection) and ``EXECUTE name(literals)`` keep the
round trips and skip most of that work: in the project's micro benchmark, 15-25% more
transactions a second and about a tenth less server CPU.

Where prepared statements do not survive (a pooler in transaction mode handing each
transaction another server connection, or application code running ``DEALLOCATE`` on
``ctx.db``), ``EXECUTE`` fails with *prepared statement does not exist*: that transaction fails
(and is retried), and the store goes on with literal statements, saying so once in its log.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped

from busline.stores import pg_session, sql
from busline.stores import postgres_sql as pg
from busline.stores.base import InboxRecord

log = logging.getLogger("busline.stores.postgres")

INBOX = "busline_inbox_insert"
OUTBOX = "busline_outbox_insert"

#: The column types, in :data:`~busline.stores.schema.TRANSACTION_COLUMNS` and
#: :data:`~busline.stores.schema.OUTBOX_COLUMNS` order.
TRANSACTION_TYPES = ("text", "text", "integer", "float8", "float8")
OUTBOX_TYPES = (
    *("text", "integer", "text", "text", "text", "text", "text", "text", "text", "text"),
    *("integer", "float8", "text", "text", "jsonb", "bytea", "float8"),
)

#: The values of the shared statements (:mod:`busline.stores.sql`), replaced by literals.
INBOX_PLACEHOLDERS = "?, ?, ?, ?"
TRANSACTION_PLACEHOLDERS = ", ".join("?" for _ in TRANSACTION_TYPES)

PREPARE = (
    f"PREPARE {INBOX} (text, text, text, float8) AS {pg.INSERT_INBOX}; "
    f"PREPARE {OUTBOX} ({', '.join((*TRANSACTION_TYPES, *OUTBOX_TYPES))}) AS "
    f"{pg.insert_with_rows(1)}"
)


def literals(values: tuple[Any, ...]) -> str:
    """``values`` as comma-separated SQL literals (see :func:`pg_session.literal`)."""
    return ", ".join(pg_session.literal(value) for value in values)


class PreparedStatements:
    """Which of a pool's connections have the statements, and the SQL to run on each."""

    def __init__(self) -> None:
        #: Server process ids of the connections that prepared them.
        self._prepared: set[int] = set()
        self.enabled = True

    async def prepare(self, conn: Any) -> None:
        """Prepare the statements on a new connection (the pool's ``init``), or on one that
        just migrated the schema. Before the tables exist there is nothing to prepare: that
        connection keeps to literal statements."""
        pid = conn.get_server_pid()
        self._prepared.discard(pid)  # a new backend may carry a gone one's process id
        if not self.enabled:
            return
        try:
            await conn.execute(PREPARE)
        except asyncpg.UndefinedTableError:
            return
        except asyncpg.DuplicatePreparedStatementError:
            pass  # prepared already (a migrating connection)
        self._prepared.add(pid)

    def _on(self, conn: Any) -> bool:
        return self.enabled and conn.get_server_pid() in self._prepared

    @staticmethod
    def inbox_values(inbox: InboxRecord) -> str:
        """The values of ``inbox`` as SQL literals (raises ``ValueError`` on a value SQL cannot
        hold: a NUL character, a time that is not finite)."""
        return literals(inbox)

    def inbox_insert(self, conn: Any, values: str) -> str:
        """The insert of an inbox record given :meth:`inbox_values` (its command status tells
        whether the record was new)."""
        if self._on(conn):
            return f"EXECUTE {INBOX}({values})"
        return sql.INSERT_INBOX.replace(INBOX_PLACEHOLDERS, values)

    def outbox_insert(
        self, conn: Any, transaction: tuple[Any, ...], rows: list[tuple[Any, ...]]
    ) -> str:
        """An outbox transaction and its rows in one statement, with literal values."""
        if len(rows) == 1 and self._on(conn):
            return f"EXECUTE {OUTBOX}({literals((*transaction, *rows[0]))})"
        return pg.transaction_with_rows(
            sql.INSERT_TRANSACTION.replace(TRANSACTION_PLACEHOLDERS, literals(transaction)),
            ", ".join(f"({literals(row)})" for row in rows),
        )

    def begin(self, conn: Any, inbox: InboxRecord | None) -> str:
        """``BEGIN``, then the insert of ``inbox`` when given."""
        if inbox is None:
            return "BEGIN"
        return f"BEGIN; {self.inbox_insert(conn, self.inbox_values(inbox))}"

    def noticed(self, error: BaseException) -> None:
        """Look at an error of a transaction: if a prepared statement was missing, go on with
        literal statements."""
        if self.enabled and isinstance(error, asyncpg.InvalidSQLStatementNameError):
            self.enabled = False
            log.warning(
                "PostgreSQL lost busline's prepared statements (%s: a pooler in transaction "
                "mode, or DEALLOCATE on ctx.db?); busline's statements go as literal SQL from "
                "now on",
                str(error).splitlines()[0],
            )
