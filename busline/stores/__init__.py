"""Stores: where the outbox and the inbox live, next to the application's own tables.

:func:`open_store` picks the implementation by URL scheme and imports its driver only then, so
``import busline`` needs neither aiosqlite nor asyncpg.
"""

from __future__ import annotations

import importlib

from busline.stores.base import (
    Claim,
    NestedTransactionError,
    NoStoreError,
    OutboxRow,
    OutboxStats,
    Store,
    StoreError,
    StoreSettings,
    StoreTransaction,
)
from busline.urls import mask_url, scheme_of

#: URL scheme → ``module:class`` and the extra that installs its driver.
_STORES: dict[str, tuple[str, str]] = {
    "sqlite": ("busline.stores.sqlite:SqliteStore", "sqlite"),
    "postgresql": ("busline.stores.postgres:PostgresStore", "postgres"),
    "postgres": ("busline.stores.postgres:PostgresStore", "postgres"),
}


def check_store_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url``'s scheme names a known store."""
    if scheme_of(url) not in _STORES:
        known = ", ".join(f"{scheme}://" for scheme in _STORES)
        raise ValueError(f"no store for URL {mask_url(url)!r}; known schemes: {known}")


def open_store(url: str, settings: StoreSettings | None = None) -> Store:
    """Create (not yet open) the store for ``url``: ``sqlite:///path.db`` or
    ``postgresql://user:pass@host/db``."""
    check_store_url(url)
    target, extra = _STORES[scheme_of(url)]
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"the {scheme_of(url)}:// store needs an optional dependency: {exc}. "
            f"Install it with: pip install 'busline[{extra}]'"
        ) from exc
    store: Store = getattr(module, attr)(url, settings or StoreSettings())
    return store


__all__ = [
    "Claim",
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
