"""Stores: where the outbox and the inbox live, next to the application's own tables.

:func:`open_store` picks the implementation by URL scheme and imports its driver only then, so
``import busline`` needs neither aiosqlite nor asyncpg.
"""

from __future__ import annotations

from busline import schemes
from busline.stores.base import (
    Claim,
    InboxRecord,
    OutboxRow,
    OutboxStats,
    Store,
    StoreSettings,
    StoreTransaction,
)
from busline.stores.errors import (
    GroupCommitError,
    NestedTransactionError,
    NoStoreError,
    StoreError,
)


def check_store_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url``'s scheme names a known store."""
    schemes.check(url, "store")


def open_store(url: str, settings: StoreSettings | None = None) -> Store:
    """Create (not yet open) the store for ``url``: ``sqlite:///path.db`` or
    ``postgresql://user:pass@host/db``.

    The scheme's store is looked up in :mod:`busline.schemes`; its driver is imported only now,
    and an ``ImportError`` names what to install when it is missing.
    """
    store: Store = schemes.resolve(url, "store")(url, settings or StoreSettings())
    return store


__all__ = [
    "Claim",
    "GroupCommitError",
    "InboxRecord",
    "NestedTransactionError",
    "NoStoreError",
    "OutboxRow",
    "OutboxStats",
    "Store",
    "StoreError",
    "StoreSettings",
    "StoreTransaction",
    "check_store_url",
    "open_store",
]
