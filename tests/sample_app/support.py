"""Running the shop in a test, and reading its databases without the shop's own code."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from sample_app.config import ShopConfig
from sample_app.faults import DuplicateCounter, Faults


def shop_config(broker: str, store: str, **faults: Any) -> ShopConfig:
    """A run of its own: a fresh run id (fresh PostgreSQL schemas), the given faults."""
    deadline = faults.pop("deadline", 20.0)
    return ShopConfig(
        broker=broker, store=store, run_id=uuid.uuid4().hex[:8], faults=Faults(**faults),
        deadline=deadline,
    )  # fmt: skip


class Counting:
    """Counts absorbed duplicates (the inbox's notes) for the duration of a ``with``."""

    def __init__(self, config: ShopConfig) -> None:
        self.counter = DuplicateCounter(config.tally)

    def __enter__(self) -> Counting:
        self.counter.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.counter.remove()


async def rows(config: ShopConfig, service: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` in ``service``'s own database (the test's own connection)."""
    if config.store.startswith("postgresql"):
        import asyncpg

        dsn = config.store.split("?", 1)[0]
        conn = await asyncpg.connect(
            dsn, server_settings={"search_path": f"shop_{config.run_id}_{service}"}
        )
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()
    with sqlite3.connect(Path(config.store) / f"{service}.db") as db:
        found = [tuple(r) for r in db.execute(sql).fetchall()]
    db.close()
    return found


async def by_order(config: ShopConfig, service: str, sql: str) -> dict[str, tuple[Any, ...]]:
    """Rows keyed by their first column (the order id); asserts it is unique."""
    found = await rows(config, service, sql)
    keyed = {row[0]: row[1:] for row in found}
    assert len(keyed) == len(found), f"{service}: an order id twice in {sql!r}"
    return keyed
