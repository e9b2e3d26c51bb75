"""How the PostgreSQL store opens and ends the transactions it lends to application code (a
handler's ``ctx.db``, ``bus.transaction()``'s ``tx.db``), in as few round trips as PostgreSQL's
simple query protocol allows:

- ``BEGIN`` and the inbox record go in one round trip (``BEGIN; INSERT ... ON CONFLICT DO
  NOTHING``, the record's values as dollar-quoted literals: the simple protocol takes no
  parameters);
- a handler's outbox (its transaction row and message rows, the last write before the commit),
  ``COMMIT`` (or ``ROLLBACK``) and the reset of the session go in one round trip: the statements
  asyncpg's pool would otherwise run in one more when the connection goes back (advisory locks
  released, cursors closed, ``UNLISTEN *``, ``RESET ALL``), so a handler's ``SET`` or ``LISTEN``
  never reaches the next user of the connection.

The pool is created with a reset that does nothing more (asyncpg still rolls back a transaction
left open and drops its own listeners first): busline's own short transactions (dispatch marks,
relay claims) change no session state, and the lent ones are reset here. The transaction is
started with ``BEGIN``, not through ``Connection.transaction()``: inside it, application code
takes a savepoint with ``SAVEPOINT name`` / ``RELEASE SAVEPOINT name`` (asyncpg refuses its
``transaction()`` in a transaction it did not start).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped

from busline.stores import sql
from busline.stores.errors import StoreError

#: What asyncpg's ``Connection.reset()`` runs on PostgreSQL when a connection goes back.
RESET_SESSION = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL"

#: The reset goes before ``COMMIT``, inside the transaction: in a transaction left aborted (a
#: handler that caught an SQL error and went on) it fails, where ``COMMIT`` would quietly answer
#: ``ROLLBACK`` and the message be acknowledged with its writes gone.
COMMIT = f"{RESET_SESSION}; COMMIT"
ROLLBACK = f"ROLLBACK; {RESET_SESSION}"

# Transactions sharing one (see busline.stores.pg_group): each after the first of the database
# transaction runs in this savepoint; what ends one goes with the next round trip.
SAVEPOINT = "SAVEPOINT busline_member"
#: After a member that succeeded (releasing too the savepoints its block left open), with the
#: reset inside the transaction: a transaction left aborted fails at it (``COMMIT`` alone would
#: answer an aborted transaction with a rollback, not an error).
RELEASE = f"RELEASE SAVEPOINT busline_member; {RESET_SESSION}; "
#: The same, after a member that failed.
ROLLBACK_TO = f"ROLLBACK TO SAVEPOINT busline_member; {RELEASE}"
#: After the first member of the transaction (no savepoint) when it succeeded, or failed.
FIRST_DONE = f"{RESET_SESSION}; "
FIRST_FAILED = f"{ROLLBACK}; "


def text_literal(value: str) -> str:
    """``value`` as a dollar-quoted SQL string (``$q$...$q$``, the tag lengthened until the value
    does not contain it): no escape processing applies inside, whatever a session set
    ``standard_conforming_strings`` to."""
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot hold NUL characters")
    tag = "$q$"
    # The quote ends at the first tag after the opening one: it must be the closing one.
    while (value + tag).find(tag) != len(value):
        tag = f"${'q' * (len(tag) - 1)}$"
    return f"{tag}{value}{tag}"


def literal(value: Any) -> str:
    """A value of an outbox or inbox row as SQL: ``NULL``, a number, dollar-quoted text, or
    ``bytea`` in hex."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return text_literal(value)
    if isinstance(value, bool):
        raise TypeError("no boolean columns here")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return repr(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        # Dollar-quoted too: hex input, whatever the session's string settings.
        return text_literal("\\x" + bytes(value).hex()) + "::bytea"
    raise TypeError(f"cannot write {type(value).__name__} as a literal")


def mark_dispatched(tx_ids: list[str], now: float, keep_sent: bool) -> str:
    """The dispatch mark of ``tx_ids`` (or, without kept rows, their deletion) as one simple
    query, committed asynchronously (``synchronous_commit = off`` for this transaction only):
    the mark needs no flush of the log before the acknowledgement, because a mark the server
    forgets in a crash only makes the relay send the messages again, and consumers' inboxes
    drop the copies (the same as a crash between sending and marking)."""
    listed = ", ".join(text_literal(tx_id) for tx_id in tx_ids)
    if keep_sent:
        write = f"{sql.MARK_DISPATCHED.replace('?', literal(float(now)))}({listed})"
    else:
        write = f"{sql.DELETE_ROWS_OF}({listed}); {sql.DELETE_TRANSACTIONS}({listed})"
    return f"BEGIN; SET LOCAL synchronous_commit = off; {write}; COMMIT"


async def keep_session(conn: Any) -> None:
    """The pool's ``reset``: nothing more to do (see the module's notes)."""


#: ``create_pool`` options: the reset above where asyncpg takes one (0.30 on); an older asyncpg
#: runs its own reset on release, one more round trip, the same result.
POOL_OPTIONS: dict[str, Any] = (
    {"reset": keep_session} if "reset" in inspect.signature(asyncpg.create_pool).parameters else {}
)


async def end(conn: Any, statement: str) -> None:
    """Run ``COMMIT`` or ``ROLLBACK`` with the session reset; if that fails, roll back and reset
    apart, and if even that fails, close the connection (the pool replaces it). Raises what the
    first attempt raised (a commit that failed, or one that ended in a rollback)."""
    try:
        status = await conn.execute(statement)
        if statement.endswith("COMMIT"):
            check_committed(status)
    except BaseException:
        try:
            await conn.execute(ROLLBACK)
        except BaseException:
            discard(conn)
        raise


def check_committed(status: str) -> None:
    """Raise unless ``COMMIT`` answered ``COMMIT``: a transaction left aborted answers
    ``ROLLBACK``, without an error, and nothing of it is kept."""
    if status != "COMMIT":
        raise StoreError(f"the transaction ended in {status}, not COMMIT: nothing is kept")


def discard(conn: Any) -> None:
    """Close the connection at once, its state unknown (the pool opens another instead)."""
    # Already gone if the pool closed meanwhile (the store's close).
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()
