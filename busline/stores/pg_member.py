"""One transaction in a group of the PostgreSQL store (see :mod:`busline.stores.pg_group`):
its turn on the group's connection for the block, then the wait for the group's commit."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from busline.stores import sql
from busline.stores.base import InboxRecord
from busline.stores.errors import shared_failure
from busline.stores.pg_group import Groups


class GroupedTransaction(Protocol):
    """What a member needs of the transaction object it lends to a member."""

    first_time: bool
    #: The member's last write, sent with the next round trip (``"...; "`` or ``""``).
    at_commit: str


T = TypeVar("T", bound=GroupedTransaction)


class Member(Generic[T]):
    """One transaction in a group: ``async with`` holds the connection for the block, then
    waits for the group's commit."""

    __slots__ = ("_group", "_groups", "_inbox", "_make_tx", "_savepoint", "_tx")

    def __init__(
        self, groups: Groups, inbox: InboxRecord | None, make_tx: Callable[[Any], T]
    ) -> None:
        self._groups = groups
        self._inbox = inbox
        self._make_tx = make_tx

    async def __aenter__(self) -> T:
        inbox = self._inbox
        statements = self._groups.statements
        # Checked before the turn: a value SQL cannot hold fails this transaction alone.
        values = None if inbox is None else statements.inbox_values(inbox)
        self._group = group = await self._groups.take_turn()
        inbox_insert = "" if values is None else statements.inbox_insert(group.conn, values)
        self._tx = tx = self._make_tx(group.conn)
        # Whether the round trip carries what ended another member (a failure may be theirs).
        shared = group.others_before(own_turns=0)
        statement, self._savepoint = group.start(inbox_insert)
        try:
            status = await group.conn.execute(statement)
        except BaseException as exc:
            await group.fail(exc)
            if shared and isinstance(exc, Exception):
                raise shared_failure(exc) from exc
            raise
        if inbox is not None:
            tx.first_time = sql.affected(status) == 1
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        group = self._group
        group.finish_turn(self._tx.at_commit if exc_type is None else None, self._savepoint)
        if group.pass_turn():
            if exc_type is None:
                await group.outcome()
            return False
        shared = group.others_before(own_turns=1)
        error = await group.end()
        # The block's own error goes on, unless the end was cancelled (that must not be lost).
        if error is not None and (exc_type is None or not isinstance(error, Exception)):
            if shared and isinstance(error, Exception):
                raise shared_failure(error) from error
            raise error
        return False
