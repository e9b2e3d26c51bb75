"""The contract every store implements, and the plain records that cross it.

A store keeps, in one database transaction, the application's own writes, the inbox record of the
message being handled and the outbox rows of what the handler sends. Implementations:
:mod:`busline.stores.sqlite` (aiosqlite) and :mod:`busline.stores.postgres` (asyncpg). Times are
seconds since the epoch as given by the bus's clock, so a virtual clock drives leases and
retention in tests.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from busline.envelope import Envelope
from busline.messages import MessageKind

if TYPE_CHECKING:  # busline.stores.sagas imports the schema, which imports this module
    from busline.stores.sagas import SagaRecord, SagaStep, ScheduledMessage


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How the outbox, relay and inbox behave. The defaults suit production.

    Args:
        inbox_retention: Seconds an inbox record (a processed idempotency key) is kept. A
            duplicate arriving later is processed again, so this must exceed the retry window.
        outbox_retention: Seconds a dispatched outbox transaction and its rows are kept (for
            inspection) before the relay deletes them; ``0`` deletes rows as soon as they are
            sent, leaving no record of what left.
        dispatch_lease: Seconds the committing instance has to dispatch its rows itself before
            the relay may take them over (after a crash, the relay waits this long).
        relay_interval: Seconds the relay sleeps between polls when it found nothing to do.
        relay_batch: Transactions the relay claims per round (with all their pending rows).
        relay_window: Most messages the relay has in flight (sent, confirm awaited) at once,
            across transactions; a transaction's own messages still go one after another.
        relay_max_backoff: Longest wait, in seconds, before retrying a row that failed to send.
        cleanup_interval: Seconds between two purges of expired inbox and outbox rows.
        pool_size: Most connections a PostgreSQL store opens (a group of transactions holds one
            while it runs, see ``max_group``; a relay draining a backlog holds up to three, one
            per claim). The default is the bus's default prefetch, so that slow handlers can
            each have a connection while fast ones share commits; opened as needed. SQLite uses
            a single connection.
        saga_retention: Seconds a completed saga instance (with its steps) is kept for
            inspection before the purge deletes it; ``0`` deletes it as soon as it completes.
        sqlite_synchronous: SQLite's ``synchronous`` setting: ``"NORMAL"`` (a commit survives
            a crash of the process; an OS crash or power cut may roll back the last ones) or
            ``"FULL"`` (the log is synced at every commit: it survives a power cut too, at a
            sync per commit). See docs/outbox.md.
        max_group: Most transactions committed together (1 to 64). Transactions that would
            otherwise wait for each other (SQLite's one writer; PostgreSQL connections busy)
            share one database transaction, each in its own savepoint, and one commit: a failing
            one rolls back only its own savepoint, and each caller still returns only after the
            shared commit. ``1`` commits every transaction on its own. At most 64: PostgreSQL
            caches that many savepoints' ids per transaction, more slow down every reader.
        group_wait: PostgreSQL: seconds a transaction may expect to wait for its turn in a
            running group (the group's transactions ahead of it times their average duration)
            before it takes a connection of its own instead, while the pool has one. Slow
            handlers (calls to other services) thus keep running side by side; fast ones share
            commits.
    """

    inbox_retention: float = 7 * 24 * 3600.0
    outbox_retention: float = 24 * 3600.0
    dispatch_lease: float = 30.0
    relay_interval: float = 1.0
    relay_batch: int = 100
    relay_window: int = 64
    relay_max_backoff: float = 30.0
    cleanup_interval: float = 60.0
    pool_size: int = 32
    saga_retention: float = 0.0
    sqlite_synchronous: str = "NORMAL"
    max_group: int = 8
    group_wait: float = 0.01

    def __post_init__(self) -> None:
        if self.sqlite_synchronous not in ("NORMAL", "FULL"):
            raise ValueError('StoreSettings.sqlite_synchronous must be "NORMAL" or "FULL"')
        for name in ("outbox_retention", "saga_retention"):
            if getattr(self, name) < 0:
                raise ValueError(f"StoreSettings.{name} must not be negative")
        for name in (
            "inbox_retention",
            "dispatch_lease",
            "relay_interval",
            "relay_max_backoff",
            "cleanup_interval",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"StoreSettings.{name} must be positive")
        if not 1 <= self.max_group <= 64:
            raise ValueError("StoreSettings.max_group must be between 1 and 64")
        if self.group_wait < 0:
            raise ValueError("StoreSettings.group_wait must not be negative")
        for name in ("relay_batch", "relay_window", "pool_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"StoreSettings.{name} must be at least 1")

    @property
    def keeps_sent_rows(self) -> bool:
        """Whether sent rows are marked dispatched and kept (else they are deleted at once)."""
        return self.outbox_retention > 0

    @property
    def keeps_completed_sagas(self) -> bool:
        """Whether completed saga instances are kept (and purged later) or deleted at once."""
        return self.saga_retention > 0


@dataclass(slots=True)
class OutboxRow:
    """One outgoing message as stored: where it goes and its full envelope."""

    id: int
    tx_id: str
    position: int
    kind: MessageKind
    destination: str
    envelope: Envelope
    #: Failed attempts so far at sending its transaction's next message (the backoff's base).
    attempts: int = 0


@dataclass(slots=True)
class Claim:
    """Rows a relay may dispatch now, in order (transaction by transaction, by position).

    The relay fills in :attr:`sent` and :attr:`failures` (at most one per transaction: a
    transaction stops at its first failure); the store records both when the claim ends. Rows
    neither sent nor failed become available again.
    """

    rows: list[OutboxRow]
    sent: list[int] = field(default_factory=list)
    #: ``(row id, error text, retry at)`` of each row that could not be sent.
    failures: list[tuple[int, str, float]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What ``busline outbox`` reports."""

    pending: int
    oldest_pending_at: float | None
    #: Transactions with pending messages whose sending failed at least once.
    failing: int
    last_error: str | None
    dispatched: int
    inbox_keys: int
    schema_version: int
    #: Scheduled messages (saga timeouts) waiting for their due time: not in :attr:`pending`.
    scheduled: int = 0


#: An inbox record: ``(consumer, idempotency key, message id, processed at)``.
InboxRecord = tuple[str, str, str, float]


class StoreTransaction(Protocol):
    """An open database transaction of a store."""

    #: Whether the inbox record the transaction was opened with was new (``True`` when it was
    #: opened without one); ``False``: a duplicate, leave the block without writing.
    first_time: bool

    @property
    def connection(self) -> Any:
        """The driver connection in the transaction (what ``ctx.db`` and ``tx.db`` return)."""

    async def add_outbox(
        self,
        transaction: tuple[Any, ...],
        rows: list[tuple[Any, ...]],
        schedule_key: str | None = None,
    ) -> None:
        """Insert an outbox transaction and its rows (values in
        :data:`busline.stores.schema.TRANSACTION_COLUMNS` and
        :data:`busline.stores.schema.OUTBOX_COLUMNS` order).

        With a ``schedule_key`` the transaction is a scheduled message, sent at its
        ``available_at``; a pending one with the same key is deleted first (replaced). Write the
        saga instance before scheduling its timeouts: a concurrent writer of the same instance
        then shows as a failed :meth:`update_saga` rather than as a unique violation here.
        """

    async def add_outbox_last(
        self, transaction: tuple[Any, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """As :meth:`add_outbox` without a schedule key, as the transaction's last write: the
        store may send it with the commit (PostgreSQL does, saving a round trip), so write
        nothing after it and expect its failure to show as the commit's."""

    async def load_saga(self, saga: str, key: str) -> SagaRecord | None:
        """The instance as committed (or written in this transaction), without locking it."""

    async def insert_saga(self, record: SagaRecord) -> bool:
        """Insert a new instance at version 1; ``False`` when ``(saga, key)`` exists (a
        concurrent insert waits for the other transaction and then returns ``False``)."""

    async def update_saga(self, record: SagaRecord, expected_version: int) -> bool:
        """Write the record as version ``expected_version + 1`` if the stored version is
        ``expected_version``; ``False`` (nothing written) when another transaction wrote it."""

    async def delete_saga(self, saga: str, key: str, expected_version: int) -> bool:
        """Delete the instance and its steps if it is at ``expected_version``."""

    async def add_saga_step(self, saga: str, key: str, step: SagaStep) -> None:
        """Record a message the instance handled."""

    async def cancel_scheduled(self, key_prefix: str) -> int:
        """Delete the pending scheduled messages whose key starts with ``key_prefix`` (not
        empty); return how many transactions went."""


class Store(Protocol):
    """Persistence of the outbox and the inbox, next to the application's own tables."""

    #: ``"sqlite"`` or ``"postgresql"``.
    dialect: str

    async def open(self, migrate: bool = True) -> None:
        """Connect and apply pending schema migrations (``migrate=False``: only connect, to
        inspect an existing database without changing it)."""

    async def close(self) -> None:
        """Close every connection."""

    def transaction(
        self, inbox: InboxRecord | None = None
    ) -> AbstractAsyncContextManager[StoreTransaction]:
        """Open a transaction: commit when the block ends, roll back if it raises.

        Given ``inbox``, the transaction starts by recording it, in the same round trip as its
        start where the database allows (``first_time`` tells whether it was new); a
        concurrent transaction holding the same record makes this wait for its outcome.
        """

    async def note_failed_dispatch(
        self, tx_id: str, sent: int, error: str, retry_at: float
    ) -> None:
        """A committed transaction's own dispatch sent its first ``sent`` rows (deleted, with
        ``outbox_retention=0``) and then failed with ``error``: note it on the transaction and
        leave the rest to the relay from ``retry_at`` on. (A complete dispatch goes through
        :meth:`mark_dispatched`.)"""

    async def mark_dispatched(self, tx_ids: list[str], now: float) -> None:
        """Mark these committed transactions dispatched (each had all its messages confirmed),
        in one write (delete them and their rows, with ``outbox_retention=0``)."""

    def claim(
        self, source: str, now: float, limit: int, lease: float
    ) -> AbstractAsyncContextManager[Claim]:
        """Claim the pending rows of up to ``limit`` of ``source``'s transactions that are due,
        so that no other relay dispatches them meanwhile; record what was sent (or failed) when
        the block ends. ``source`` is the sending service: a relay sends only its service's
        messages (another service sharing the database may use another broker)."""

    async def purge(
        self,
        outbox_before: float,
        inbox_before: float,
        limit: int,
        *,
        sagas_before: float | None = None,
    ) -> int:
        """Delete the rows of up to ``limit`` outbox transactions dispatched before
        ``outbox_before``, up to ``limit`` inbox records older than ``inbox_before`` and (given
        ``sagas_before``) up to ``limit`` saga instances completed before it, with their steps;
        return how many rows went."""

    async def stats(self, now: float | None = None) -> OutboxStats:
        """Backlog, failures and sizes; scheduled messages not due at ``now`` (default: the
        wall clock) are counted apart from the backlog."""

    async def list_sagas(
        self,
        saga: str | None = None,
        status: str | None = None,
        updated_before: float | None = None,
        limit: int = 100,
    ) -> list[SagaRecord]:
        """Saga instances, stalest (least recently updated) first."""

    async def saga_history(self, saga: str, key: str) -> list[SagaStep]:
        """The messages an instance handled, oldest first."""

    async def scheduled(self, key_prefix: str) -> list[ScheduledMessage]:
        """The pending scheduled messages whose key starts with ``key_prefix``, soonest first."""

    async def schema_version(self) -> int:
        """The highest schema migration applied."""
