"""The store's errors (apart from the records, so that every store module can raise them)."""

from __future__ import annotations

from busline.errors import BuslineError


class StoreError(BuslineError):
    """The store could not be opened, migrated or used as asked."""


class NoStoreError(StoreError, RuntimeError):
    """A store feature (``ctx.db``, ``bus.transaction()``) was used on a bus without a store."""


class NestedTransactionError(StoreError, RuntimeError):
    """A busline transaction was opened inside another one (write through the outer one)."""


class GroupCommitError(StoreError):
    """The database transaction this one shared with others (see docs/outbox.md, "Shared
    commits") did not commit: nothing of it is stored, and the cause may be another's (the
    retry middleware runs the message again at once, alone, without counting it)."""


def shared_failure(cause: BaseException) -> GroupCommitError:
    """The error a member of a shared transaction gets when that transaction failed."""
    first_line = str(cause).splitlines()[0] if str(cause) else ""
    return GroupCommitError(
        f"the transaction shared with others did not commit: {type(cause).__name__}: {first_line}"
    )
