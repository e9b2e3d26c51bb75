"""An open transaction of the PostgreSQL store: the connection lent to application code and
busline's writes into it (inbox, outbox, and through its saga mixin, sagas)."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped

from busline.stores import postgres_sql as pg
from busline.stores import saga_postgres
from busline.stores.pg_prepared import PreparedStatements


class PostgresTransaction(saga_postgres.PostgresSagaTransaction):
    """An open PostgreSQL transaction; :attr:`connection` is the ``asyncpg`` connection."""

    __slots__ = ("at_commit", "connection", "first_time", "statements")

    def __init__(self, connection: asyncpg.Connection, statements: PreparedStatements) -> None:
        self.connection = connection
        self.statements = statements
        #: Whether the inbox record the transaction was opened with was new.
        self.first_time = True
        #: The outbox insert sent with the commit (see :meth:`add_outbox_last`).
        self.at_commit = ""

    async def add_outbox(
        self,
        transaction: tuple[Any, ...],
        rows: list[tuple[Any, ...]],
        schedule_key: str | None = None,
    ) -> None:
        """Insert an outbox transaction and its rows (in one round trip, unless many); a
        scheduled message replaces the pending one with its key (one more round trip)."""
        scheduled = schedule_key is not None
        if scheduled:
            await self.connection.execute(saga_postgres.REPLACE_SCHEDULED, schedule_key)
            transaction = (*transaction, schedule_key)
        if len(rows) <= pg.ONE_STATEMENT_ROWS:
            values = [value for row in rows for value in row]
            insert = pg.insert_with_rows(len(rows), scheduled)
            await self.connection.execute(insert, *transaction, *values)
            return
        first = saga_postgres.INSERT_SCHEDULED_TRANSACTION if scheduled else pg.INSERT_TRANSACTION
        await self.connection.execute(first, *transaction)
        await self.connection.executemany(pg.INSERT_OUTBOX, rows)

    async def add_outbox_last(
        self, transaction: tuple[Any, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert an outbox transaction and its rows as the transaction's last write: sent with
        its commit, in the same round trip (if it fails, the commit does too)."""
        self.at_commit = self.statements.outbox_insert(self.connection, transaction, rows) + "; "
