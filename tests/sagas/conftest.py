"""Saga tests run on both stores and both transports, with the store tests' fixtures."""

from tests.stores.conftest import make_store_bus, pg_url, sqlite_url, store_url, tables

__all__ = ["make_store_bus", "pg_url", "sqlite_url", "store_url", "tables"]
