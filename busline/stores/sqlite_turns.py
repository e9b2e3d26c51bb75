"""Write turns on the SQLite store's one connection, grouped under shared commits.

SQLite has one writer at a time, so the store's transactions already run one after another.
Transactions that queue up behind each other therefore share one database transaction (a
*group*) at no cost in concurrency: each runs in its own savepoint (a failing one rolls back only
its own work), and the group commits once, when nobody is queued behind its last turn (or it
reached ``max_group`` turns). Each caller still returns only after the shared commit, so nothing
is sent or acknowledged before its writes are durable; if the commit fails, every caller of the
group gets the error (and retries), and the next turns commit on their own, so that one
transaction that cannot commit does not keep failing its neighbours.

busline's own statements (begin, savepoints, the inbox record, the outbox rows, the commit) run
on the event loop's thread, directly on the ``sqlite3`` connection: each takes microseconds in
WAL mode, far less than a trip to aiosqlite's thread. Application code (``ctx.db``) uses the
``aiosqlite`` connection over the same ``sqlite3`` connection, during its turn only. What could
block the loop stays in aiosqlite's thread: waiting for another process's write lock, and a
commit that syncs the log (``synchronous=FULL``), and checkpoints (copying the write-ahead log
into the database file and syncing it): the connection's automatic checkpoint is off, and the
turns run one in aiosqlite's thread every so many commits, between two groups, so that the log
is copied whole and starts over (see :class:`Checkpoints`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from busline.stores.errors import StoreError, shared_failure

log = logging.getLogger("busline.stores.sqlite")

#: The savepoint of one turn (released before the next turn takes its own).
SAVEPOINT = "busline_turn"

#: Pages of write-ahead log a checkpoint should find (SQLite's own automatic checkpoint runs at
#: 1,000): the number of commits between checkpoints is tuned towards it.
CHECKPOINT_PAGES = 1000


class Checkpoints:
    """When to checkpoint: every :attr:`interval` commits, the interval tuned so that each
    checkpoint finds about :data:`CHECKPOINT_PAGES` pages of log."""

    __slots__ = ("commits", "interval")

    def __init__(self) -> None:
        self.commits = 0
        self.interval = 64

    def committed(self) -> bool:
        """Count a commit; ``True`` when a checkpoint is due."""
        self.commits += 1
        return self.commits >= self.interval

    def done(self, pages: int) -> None:
        """A checkpoint found ``pages`` pages of log: tune the interval towards the target."""
        rate = max(pages, 1) / max(self.commits, 1)
        self.interval = min(4096, max(8, round(CHECKPOINT_PAGES / rate)))
        self.commits = 0


class SqliteGroup:
    """One database transaction shared by consecutive turns."""

    __slots__ = ("done", "riders", "solo", "turns")

    def __init__(self, loop: asyncio.AbstractEventLoop, solo: bool) -> None:
        #: Writes that ride along: run just before the commit (see :meth:`SqliteTurns.ride`).
        self.riders: list[Callable[[sqlite3.Connection], None]] = []
        #: Resolved when the group committed (or failed: then every member retries).
        self.done: asyncio.Future[None] = loop.create_future()
        self.turns = 0
        #: Commit after the first turn (after a failed group, until its members went again).
        self.solo = solo


class SqliteTurns:
    """Turns on one SQLite connection, grouped into shared transactions.

    Args:
        raw: The ``sqlite3`` connection (opened with ``check_same_thread=False``).
        conn: The ``aiosqlite`` connection over ``raw``.
        max_group: Most turns committed together.
        sync_commit: Whether a commit syncs the log (``synchronous=FULL``): then it runs in
            aiosqlite's thread.
        busy_timeout_ms: How long to wait for another process's write lock.
    """

    def __init__(
        self,
        raw: sqlite3.Connection,
        conn: aiosqlite.Connection,
        *,
        max_group: int,
        sync_commit: bool,
        busy_timeout_ms: int,
    ) -> None:
        self.raw = raw
        self.conn = conn
        self._max_group = max_group
        self._sync_commit = sync_commit
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._group: SqliteGroup | None = None
        #: Turns still to commit on their own after a group failed to commit.
        self._solo = 0
        self._flush: asyncio.Task[None] | None = None
        self._checkpoints = Checkpoints()
        self._checkpoint: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The connection to this caller alone, in its own savepoint of the open group's
        transaction; returns once that transaction committed, raises if the block raised or the
        group could not commit."""
        await self._acquire()
        group: SqliteGroup | None = None
        try:
            group = await self._join()
            self.raw.execute(f"SAVEPOINT {SAVEPOINT}")
            try:
                yield
            except BaseException:
                self._undo_turn(group)
                raise
            self._end_turn(group)
        finally:
            await self._pass_on(group)
        # Shielded: a caller cancelled while waiting must not cancel the others' wait.
        await asyncio.shield(group.done)

    async def ride(self, write: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``write`` (busline's own short statements, a dispatch mark) in the open group's
        transaction just before it commits, and return once it committed; with no group open,
        in a turn of its own. Riding saves the turn: the handlers' turns follow each other
        without it."""
        group = self._group
        if group is None or group.solo:
            async with self.turn():
                write(self.raw)
            return
        group.riders.append(write)
        await asyncio.shield(group.done)

    async def _acquire(self) -> None:
        self._waiting += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self._waiting -= 1
            self._flush_if_abandoned()
            raise
        self._waiting -= 1

    def _flush_if_abandoned(self) -> None:
        """A group left open for a waiter that gave up: commit it, or its members wait forever."""
        abandoned = self._group is not None and self._waiting == 0 and not self._lock.locked()
        if abandoned and (self._flush is None or self._flush.done()):
            self._flush = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        """Commit the open group, if any (when the store closes, or after an abandoned wait)."""
        async with self._lock:
            await self._finish_open()

    async def _finish_open(self) -> None:
        if self._group is not None:
            await self._finish(self._group)

    async def _join(self) -> SqliteGroup:
        group = self._group
        if group is None:
            await self._begin()
            group = SqliteGroup(asyncio.get_running_loop(), solo=self._solo > 0)
            self._group = group
        if self._solo:
            self._solo -= 1
        group.turns += 1
        return group

    async def _begin(self) -> None:
        raw = self.raw
        if raw.in_transaction:  # left behind by a cancelled rollback: nothing of it is kept
            raw.rollback()
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        # Another process holds the write lock: wait for it in aiosqlite's thread, not here.
        await self.conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        try:
            await self.conn.execute("BEGIN IMMEDIATE")
        finally:
            raw.execute("PRAGMA busy_timeout=0")

    def _undo_turn(self, group: SqliteGroup) -> None:
        """Roll back this turn's savepoint; if even that fails, the whole group goes."""
        try:
            self.raw.execute(f"ROLLBACK TO {SAVEPOINT}")
            self.raw.execute(f"RELEASE {SAVEPOINT}")
        except sqlite3.Error as exc:
            self._fail(group, exc)

    def _end_turn(self, group: SqliteGroup) -> None:
        """Release this turn's savepoint, checking the transaction is still the group's."""
        if not self.raw.in_transaction:
            # A COMMIT or ROLLBACK through ctx.db, or SQLite rolled back after an error.
            error = StoreError(
                "the transaction ended inside a handler (never commit or roll back through "
                "ctx.db); its group is retried"
            )
            self._fail(group, error)
            raise error
        try:
            self.raw.execute(f"RELEASE {SAVEPOINT}")
        except sqlite3.Error as exc:
            self._fail(group, exc)
            raise

    async def _pass_on(self, group: SqliteGroup | None) -> None:
        """Leave the group open for the next waiter, or commit it; then give up the turn."""
        try:
            if group is not None and group is self._group:
                if self._waiting and group.turns < self._max_group and not group.solo:
                    return  # the next turn joins it; the last one commits
                await self._finish(group)
        finally:
            self._lock.release()

    async def _finish(self, group: SqliteGroup) -> None:
        """Commit the group's transaction (with the writes riding along) and tell its members."""
        self._group = None
        try:
            for write in group.riders:
                write(self.raw)
            if self._sync_commit:
                await self.conn.commit()
            else:
                self.raw.execute("COMMIT")
        except BaseException as exc:
            self._fail(group, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if not group.done.done():
            group.done.set_result(None)
        if self._checkpoints.committed() and (self._checkpoint is None or self._checkpoint.done()):
            self._checkpoint = asyncio.get_running_loop().create_task(self._run_checkpoint())

    async def _run_checkpoint(self) -> None:
        """Copy the log into the database file between two groups, in aiosqlite's thread (it
        syncs the file): with no transaction open on this connection the copy is whole, and the
        next transaction starts the log over."""
        try:
            async with self._lock:
                await self._finish_open()
                found = await self.conn.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:
            log.warning("SQLite checkpoint failed; the next one retries", exc_info=True)
            return
        for _busy, pages, _copied in found:
            self._checkpoints.done(pages)

    def _fail(self, group: SqliteGroup, cause: BaseException) -> None:
        """Roll the group's transaction back and fail every member: each retries; the next
        turns (as many as the group had) commit alone, so one bad transaction fails alone."""
        if self._group is group:
            self._group = None
        try:
            if self.raw.in_transaction:
                self.raw.rollback()
        except sqlite3.Error:
            log.exception("could not roll back a failed SQLite transaction")
        self._solo = max(self._solo, group.turns)
        if not group.done.done():
            group.done.set_exception(shared_failure(cause))
            # Members that failed on their own never wait for it: don't warn about that.
            group.done.exception()

    async def close(self) -> None:
        """Commit what is open; wait for a running flush or checkpoint."""
        await self.flush()
        pending = [task for task in (self._flush, self._checkpoint) if task is not None]
        await asyncio.gather(*pending, return_exceptions=True)


def is_busy(error: sqlite3.Error) -> bool:
    """Whether SQLite answered busy, of any kind: the primary code (the low byte of the
    extended one) is ``SQLITE_BUSY``. Another connection recovering the log answers
    ``SQLITE_BUSY_RECOVERY``: seen as 'database is locked' when instances start together."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def changes_of(raw: sqlite3.Connection, statement: str, params: tuple[Any, ...]) -> int:
    """Run one statement on ``raw`` and return how many rows it changed."""
    before = raw.total_changes
    raw.execute(statement, params)
    return raw.total_changes - before
