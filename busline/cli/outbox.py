"""Show a store's outbox backlog: messages committed but not yet sent, how old the oldest is,
the latest send failure, and the sizes of the dispatched-row and inbox tables.

Exit status: 0, or 1 with ``--max-age`` when the oldest pending message is older than that,
or 2 when the store cannot be read. The database is only read, never migrated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from busline.cli.common import USAGE, complain
from busline.stores import OutboxStats, StoreError, open_store
from busline.stores.schema import LATEST_VERSION
from busline.urls import mask_url

HELP = "show the outbox backlog (pending messages, oldest pending age) of a store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``busline outbox``'s options."""
    parser.add_argument(
        "--store",
        # Read in run(), not here: the help never shows the variable's value (a password).
        default=None,
        help="store URL, e.g. sqlite:///orders.db or postgresql://... (default: $BUSLINE_STORE)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--max-age",
        type=float,
        metavar="SECONDS",
        help="exit with status 1 when the oldest pending message is older than this",
    )


def run(args: argparse.Namespace) -> int:
    """Print the report; return the exit status."""
    args.store = args.store or os.environ.get("BUSLINE_STORE")
    if not args.store:
        complain("busline outbox", "give --store URL (or set BUSLINE_STORE)")
        return USAGE
    try:
        stats = asyncio.run(read_stats(args.store))
    except Exception as exc:
        # Status 2, not 1: 1 means "backlog too old" to whoever polls this (see --max-age).
        complain("busline outbox", describe(exc, args.store))
        return 2
    now = time.time()
    report = as_dict(stats, now, mask_url(args.store))
    print(json.dumps(report) if args.json else as_text(report))
    age = report["oldest_pending_age"]
    if args.max_age is not None and age is not None and age > args.max_age:
        return 1
    return 0


async def read_stats(url: str) -> OutboxStats:
    """Open the store without migrating it and read its statistics."""
    store = open_store(url)
    await store.open(migrate=False)
    try:
        version = await store.schema_version()
        if version < LATEST_VERSION:
            # Its tables are not the ones this busline reads; say so rather than fail in SQL.
            raise StoreError(
                f"the database's busline schema is at version {version}, older than this "
                f"busline's ({LATEST_VERSION}): start a bus of this version on it to migrate it "
                f"(busline outbox only reads)"
            )
        return await store.stats()
    finally:
        await store.close()


def describe(error: Exception, url: str) -> str:
    """Explain a failure to read the store."""
    if isinstance(error, StoreError):
        return str(error)
    return (
        f"cannot read the outbox of {mask_url(url)} ({type(error).__name__}: {error}); has a bus "
        f"with this store been started?"
    )


def as_dict(stats: OutboxStats, now: float, store: str) -> dict[str, Any]:
    """The report as plain data."""
    oldest = stats.oldest_pending_at
    return {
        "store": store,
        "pending": stats.pending,
        "failing": stats.failing,
        "oldest_pending_age": None if oldest is None else round(max(now - oldest, 0.0), 3),
        "last_error": stats.last_error,
        "dispatched_retained": stats.dispatched,
        "inbox_keys": stats.inbox_keys,
        "schema_version": stats.schema_version,
    }


def as_text(report: dict[str, Any]) -> str:
    """The report for people."""
    age = report["oldest_pending_age"]
    lines = [
        f"store:              {report['store']}",
        f"pending:            {report['pending']} message(s); {report['failing']} transaction(s) "
        "failed at least once",
        f"oldest pending:     {'-' if age is None else f'{age:.1f}s ago'}",
        f"last error:         {report['last_error'] or '-'}",
        f"dispatched, kept:   {report['dispatched_retained']}",
        f"inbox keys:         {report['inbox_keys']}",
        f"schema version:     {report['schema_version']}",
    ]
    return "\n".join(lines)
