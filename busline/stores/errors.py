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
    commits") did not commit: nothing of it is stored; retry it like any failure."""
