"""PostgreSQL transactions that share one database transaction and its commit (a *group*).

Members run one after another on the group's connection, each (after the first) in a savepoint;
a member's turn holds the connection from its start round trip to the end of its block. What
ends a member (its outbox insert, its savepoint's release, the session's reset) goes with the
next member's start, and the group ends in one round trip::

    BEGIN; INSERT INTO busline_inbox ...                                  -- first member
    <outbox>; <reset>; SAVEPOINT busline_member; INSERT INTO busline_inbox ...  -- the next
    <outbox>; RELEASE SAVEPOINT busline_member; <reset>; COMMIT           -- the group's end

A member whose block raises is rolled back alone (the first of a transaction: all of it, there
is nothing else). Every member returns after the shared commit; if that, or a round trip
carrying another member's statements, fails (as after a member that swallowed an SQL error),
the group is rolled back, each member waiting for it raises :class:`GroupCommitError` and those
queued that had not started go elsewhere; the next transactions then run alone, as many as the
group had. Placement: see :meth:`Groups.place`.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from time import perf_counter
from typing import Any, Literal

from busline.stores import pg_session
from busline.stores.errors import shared_failure
from busline.stores.pg_prepared import PreparedStatements

#: How a queued member's wait ends: its turn came, its group failed before (place it again), or
#: it waited too long and goes to a connection of its own.
Turn = Literal["turn", "place again", "own group"]
TURN: Turn = "turn"
PLACE_AGAIN: Turn = "place again"
OWN_GROUP: Turn = "own group"
#: Weight of the latest turn in the store-wide typical turn (a new group's estimate).
SMOOTHING = 0.1


class Group:
    """A pooled connection lent to members one after another, in one database transaction."""

    def __init__(self, groups: Groups) -> None:
        self.groups = groups
        self.conn: Any = None
        #: The turns of the members waiting for the connection, in order.
        self.queue: deque[asyncio.Future[Turn]] = deque()
        self.joined = 1
        self.accepting = True
        #: Whether a database transaction is open (``BEGIN`` sent, not ended).
        self.in_tx = False
        #: Statements left by the previous member, sent with the next round trip.
        self.carried = ""
        #: The group's outcome: ``None`` once committed, else the error.
        self.done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.turn_started = perf_counter()
        self.turn_total = 0.0
        self.turns = 0

    def expected_wait(self, now: float) -> float:
        """Seconds a member joining now would likely wait for its turn: the queue times the
        average turn, plus the running turn (counted as at least as long as it already is)."""
        per_turn = self.turn_total / self.turns if self.turns else self.groups.typical
        return len(self.queue) * per_turn + max(per_turn, now - self.turn_started)

    async def connect(self) -> None:
        """Take a pooled connection (the opening member holds the turn meanwhile)."""
        groups = self.groups
        groups.acquiring += 1
        try:
            self.conn = await groups.pool.acquire()
        except BaseException as exc:
            await self.fail(exc)
            raise
        finally:
            groups.acquiring -= 1

    async def wait_turn(self) -> Turn:
        """Queue for the connection, until the turn comes (:data:`TURN`), the group fails
        (:data:`PLACE_AGAIN`) or the wait outlasts the patience while the pool has a
        connection free (:data:`OWN_GROUP`)."""
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[Turn] = loop.create_future()
        self.queue.append(turn)
        self.joined += 1
        if self.joined >= self.groups.max_group:
            self.stop_accepting()
        timer = loop.call_later(self.groups.patience, self._run_out, turn)
        try:
            return await turn
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.result() == TURN:
                # Given the turn just as it was cancelled: hand it on, or end the group.
                if not self.pass_turn():
                    await self.end()
            else:
                self.leave(turn)
            raise
        finally:
            timer.cancel()

    def _run_out(self, turn: asyncio.Future[Turn]) -> None:
        """A queued member waited its patience out: the running turn is much longer than
        expected (a handler calling another service), so it goes to a connection of its own if
        the pool has one, instead of waiting on behind it."""
        if turn.done():
            return
        if self.groups.pool_has_room():
            self.leave(turn)
            turn.set_result(OWN_GROUP)
        else:  # nowhere to go: look again later (the timer cancelled at the turn is the first)
            asyncio.get_running_loop().call_later(self.groups.patience, self._run_out, turn)

    def leave(self, turn: asyncio.Future[Turn]) -> None:
        """Take a member that never had its turn out of the queue."""
        if turn in self.queue:
            self.queue.remove(turn)
            self.joined -= 1

    def start(self, inbox_insert: str) -> tuple[str, bool]:
        """The member's start round trip, and whether it runs in a savepoint (not when it is
        the first of the database transaction)."""
        savepoint = self.in_tx
        statement = self.carried + (pg_session.SAVEPOINT if savepoint else "BEGIN")
        if inbox_insert:
            # Last, so that the round trip's status is the insert's (new record or not).
            statement += "; " + inbox_insert
        self.carried = ""
        self.in_tx = True
        return statement, savepoint

    def finish_turn(self, at_commit: str | None, savepoint: bool) -> None:
        """Leave what ends the running member (``at_commit`` its last write; ``None`` if its
        block raised: roll it back) for the next round trip."""
        elapsed = perf_counter() - self.turn_started
        self.turn_total += elapsed
        self.turns += 1
        groups = self.groups
        groups.typical += SMOOTHING * (elapsed - groups.typical) if groups.typical else elapsed
        if at_commit is None:
            self.carried += pg_session.ROLLBACK_TO if savepoint else pg_session.FIRST_FAILED
            self.in_tx = savepoint  # the first member's rollback ends the transaction
        else:
            self.carried += at_commit + (pg_session.RELEASE if savepoint else pg_session.FIRST_DONE)

    def pass_turn(self) -> bool:
        """Give the connection to the next member queued; ``False`` when none is (the group
        takes no more members: the caller ends it)."""
        queue = self.queue
        while queue:
            turn = queue.popleft()
            if not turn.done():  # a cancelled waiter's turn is done
                self.turn_started = perf_counter()
                turn.set_result(TURN)
                return True
        self.stop_accepting()
        return False

    def stop_accepting(self) -> None:
        """Take no more members."""
        if self.accepting:
            self.accepting = False
            self.groups.open.remove(self)

    async def end(self) -> BaseException | None:
        """Commit (or only roll back what failed), give the connection back and tell the
        members waiting how it went; return the error, if any."""
        statement = self.carried + "COMMIT" if self.in_tx else self.carried.removesuffix("; ")
        error: BaseException | None = None
        try:
            if statement:
                status = await self.conn.execute(statement)
                if self.in_tx:
                    pg_session.check_committed(status)
        except BaseException as exc:
            error = exc
        if error is None:
            self.done.set_result(None)
            await self.groups.pool.release(self.conn)
        else:
            await self.fail(error)
        return error

    async def fail(self, error: BaseException) -> None:
        """End the group on ``error``: members waiting for the commit get it, members queued
        are placed again; roll back (or, failing that, close the connection) and give it back."""
        self.stop_accepting()
        self.groups.statements.noticed(error)
        # The transactions coming next commit alone (as many as this group had), so that one
        # that cannot commit, retried, fails alone instead of taking new neighbours with it.
        self.groups.solo += self.joined
        while self.queue:
            turn = self.queue.popleft()
            if not turn.done():
                turn.set_result(PLACE_AGAIN)
        if not self.done.done():
            self.done.set_result(error)
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            await conn.execute(pg_session.ROLLBACK)
        except Exception:
            pg_session.discard(conn)  # a round trip interrupted, say
        except BaseException:
            pg_session.discard(conn)
            raise  # cancelled meanwhile: the cancellation goes on
        finally:
            await self.groups.pool.release(conn)

    async def outcome(self) -> None:
        """Wait for the group's end; raise :class:`GroupCommitError` if it did not commit."""
        # Shielded: a member cancelled while waiting must not cancel the others' outcome.
        error = await asyncio.shield(self.done)
        if error is not None:
            raise shared_failure(error) from error

    def others_before(self, own_turns: int) -> bool:
        """Whether other members' turns were in this group, besides the caller's ``own_turns``
        done (then a failure of its round trips may be theirs, not the caller's)."""
        return self.turns > own_turns


class Groups:
    """A store's groups accepting members, and where a new transaction goes."""

    def __init__(
        self, pool: Any, max_group: int, group_wait: float, statements: PreparedStatements
    ) -> None:
        self.pool = pool
        #: The statements each transaction runs (prepared, where the connection has them).
        self.statements = statements
        self.max_group = max_group
        self.group_wait = group_wait
        #: Seconds a member queued waits for its turn before it looks for a connection of its
        #: own (twice the wait it joined expecting at most; not less than a millisecond).
        self.patience = max(2 * group_wait, 0.001)
        self.open: list[Group] = []
        #: Connections this store's groups are taking from the pool right now.
        self.acquiring = 0
        #: Transactions still to run alone after a group failed.
        self.solo = 0
        #: Recent turns' duration, smoothed: the estimate for a group with no turn done yet.
        self.typical = 0.0

    def place(self) -> tuple[Group, bool]:
        """The group a new transaction goes to, and whether it is new (the caller connects)."""
        if self.solo:
            self.solo -= 1
            return self.new_group(accepting=False), True
        now = perf_counter()
        best: Group | None = None
        best_wait = math.inf
        for group in self.open:
            wait = group.expected_wait(now)
            if wait < best_wait:
                best, best_wait = group, wait
        if best is not None and (best_wait <= self.group_wait or not self.pool_has_room()):
            return best, False
        return self.new_group(), True

    def new_group(self, accepting: bool = True) -> Group:
        """A group not connected yet (``accepting``: others may join it)."""
        group = Group(self)
        if accepting:
            self.open.append(group)
        else:
            group.accepting = False
        return group

    def pool_has_room(self) -> bool:
        """Whether the pool would lend a connection now (idle or not opened yet); the relay and
        the dispatch marker share it, so its own counts decide."""
        pool = self.pool
        in_use = pool.get_size() - pool.get_idle_size()
        return bool(pool.get_max_size() - in_use - self.acquiring > 0)

    async def take_turn(self) -> Group:
        """Place a transaction and wait until it holds its group's connection."""
        outcome = PLACE_AGAIN
        while True:
            group, new = (self.new_group(), True) if outcome == OWN_GROUP else self.place()
            if new:
                await group.connect()
                return group
            outcome = await group.wait_turn()
            if outcome == TURN:
                return group
