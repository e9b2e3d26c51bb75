"""``busline sagas``: list saga instances, stalest first, and show one: its state, pending
timeouts, the messages it handled and the compensations it recorded.

``--store`` (default ``$BUSLINE_STORE``), ``--saga`` and ``--json`` go before or after the action:
``busline sagas --store URL list`` and ``busline sagas list --store URL`` are the same. The
database is only read, never migrated; no broker is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from busline.cli.common import FAILURE, USAGE, complain
from busline.stores import Store, StoreError, open_store
from busline.stores.sagas import SagaRecord, SagaStep, ScheduledMessage
from busline.stores.sql import numbered
from busline.urls import mask_url

HELP = "list saga instances (stalest first) and show one's state, history and timeouts"
STATUSES = ("running", "completed")
#: The schema migration that created the saga tables.
SAGA_SCHEMA_VERSION = 4
#: Suffixes of ``--stale``, in seconds.
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: The sagas having an instance of a key: the Store API looks instances up by saga and key only.
_SAGAS_OF_KEY = "SELECT saga FROM busline_sagas WHERE key = ? ORDER BY saga"
#: How many instances a store without SQL is searched through for a key (see _sagas_of_key).
_SCAN_LIMIT = 100_000


def duration(text: str) -> float:
    """Parse ``--stale``: plain seconds or a number with an s, m, h or d suffix."""
    number, scale = (text[:-1], _UNITS[text[-1]]) if text[-1:] in _UNITS else (text, 1.0)
    try:
        seconds = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (e.g. 90, 15m, 2h, 1d)"
        ) from None
    if not 0 <= seconds < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (negative or infinite)")
    return seconds


def positive(text: str) -> int:
    """Parse ``--limit``."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _add_shared_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS leaves an option out of the namespace when not given, so an action's parser does
    # not overwrite a value given before the action; run() applies the defaults.
    parser.add_argument(
        "--store",
        default=argparse.SUPPRESS,
        # The help never shows $BUSLINE_STORE's value: it may hold a password.
        help="store URL, e.g. sqlite:///orders.db or postgresql://... (default: $BUSLINE_STORE)",
    )
    parser.add_argument("--saga", default=argparse.SUPPRESS, help="only this saga (its name)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def add_arguments(sagas: argparse.ArgumentParser) -> None:
    """Add the ``sagas`` options and actions to its parser."""
    _add_shared_options(sagas)
    actions = sagas.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="one line per instance, stalest first")
    listing.add_argument("--status", choices=STATUSES, help="only instances in this status")
    listing.add_argument(
        "--stale",
        type=duration,
        metavar="DURATION",
        help="only instances not updated for this long: seconds, or 30s, 15m, 2h, 1d",
    )
    listing.add_argument(
        "--limit", type=positive, default=100, metavar="N", help="at most N (default 100)"
    )
    show = actions.add_parser("show", help="everything about one instance")
    show.add_argument("key", metavar="KEY", help="the instance's correlation key")
    for action in (listing, show):
        _add_shared_options(action)


def run(args: argparse.Namespace) -> int:
    """Carry out one ``busline sagas`` command; return the exit status."""
    args.store = getattr(args, "store", None) or os.environ.get("BUSLINE_STORE")
    args.saga = getattr(args, "saga", None)
    args.json = getattr(args, "json", False)
    if not args.store:
        complain("busline sagas", "give --store URL (or set BUSLINE_STORE)")
        return USAGE
    try:
        return asyncio.run(_run(args, time.time()))
    except Exception as exc:
        complain("busline sagas", _describe(exc, args.store))
        return FAILURE


def _describe(error: Exception, url: str) -> str:
    if isinstance(error, StoreError):
        return str(error)  # already names the store, masked
    return f"cannot read the sagas of {mask_url(url)} ({type(error).__name__}: {error})"


@asynccontextmanager
async def _opened(url: str) -> AsyncIterator[Store]:
    """The store, open without migrating it, with the saga tables checked to exist."""
    store = open_store(url)
    await store.open(migrate=False)
    try:
        version = await store.schema_version()
        if version < SAGA_SCHEMA_VERSION:
            # Say so rather than fail in SQL on a missing table.
            raise StoreError(
                f"the database's busline schema is at version {version}, older than the saga "
                f"tables ({SAGA_SCHEMA_VERSION}): start a bus of this busline on it to migrate "
                f"it (busline sagas only reads)"
            )
        yield store
    finally:
        await store.close()


async def _run(args: argparse.Namespace, now: float) -> int:
    async with _opened(args.store) as store:
        if args.action == "show":
            return await _show(store, args, now)
        stale_before = None if args.stale is None else now - args.stale
        records = await store.list_sagas(args.saga, args.status, stale_before, args.limit)
    summaries = [_summary(record, now) for record in records]
    print(json.dumps(summaries) if args.json else _list_text(records, args, now))
    if len(records) == args.limit:
        # On stderr, where it cannot be taken for an instance (or break the JSON).
        print(f"the {args.limit} stalest shown; more may match (raise --limit)", file=sys.stderr)
    return 0


def _summary(record: SagaRecord, now: float) -> dict[str, Any]:
    return {
        "saga": record.saga,
        "key": record.key,
        "status": record.status,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "completed_at": record.completed_at,
        "updated_age": round(max(now - record.updated_at, 0.0), 3),
    }


def _list_text(records: list[SagaRecord], args: argparse.Namespace, now: float) -> str:
    if not records:
        filters = [f"saga {args.saga}"] if args.saga else []
        filters += [f"status {args.status}"] if args.status else []
        filters += [f"not updated for {_span(args.stale)}"] if args.stale is not None else []
        return "no saga instances" + (f" ({', '.join(filters)})" if filters else "")
    header = ("SAGA", "KEY", "STATUS", "VERSION", "UPDATED", "CREATED")
    rows = [header] + [
        (r.saga, r.key, r.status, str(r.version), _ago(r.updated_at, now), _at(r.created_at))
        for r in records
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


async def _show(store: Store, args: argparse.Namespace, now: float) -> int:
    names = [args.saga] if args.saga else await _sagas_of_key(store, args.key)
    record = None
    if len(names) == 1:
        async with store.transaction() as tx:  # only reads: its commit changes nothing
            record = await tx.load_saga(names[0], args.key)
    if len(names) > 1:
        complain(
            "busline sagas",
            f"key {args.key!r} has instances of several sagas: {', '.join(names)}; give --saga",
        )
        return FAILURE
    if record is None:
        of_saga = f" of saga {args.saga}" if args.saga else ""
        complain("busline sagas", f"no saga instance with key {args.key!r}{of_saga}")
        return FAILURE
    history = await store.saga_history(record.saga, record.key)
    # The saga runtime keys an instance's timeouts "<saga>/<key>/<name>".
    timeouts = await store.scheduled(f"{record.saga}/{record.key}/")
    if args.json:
        print(json.dumps(_details(record, history, timeouts, now)))
    else:
        print(_details_text(record, history, timeouts, now))
    return 0


async def _sagas_of_key(store: Store, key: str) -> list[str]:
    """The names of the sagas with an instance of ``key``."""
    if store.dialect not in ("sqlite", "postgresql"):  # a plugin's store, maybe not SQL
        return sorted({r.saga for r in await store.list_sagas(limit=_SCAN_LIMIT) if r.key == key})
    async with store.transaction() as tx:  # only reads: its commit changes nothing
        if store.dialect == "sqlite":
            found = await tx.connection.execute_fetchall(_SAGAS_OF_KEY, (key,))
        else:
            found = await tx.connection.fetch(numbered(_SAGAS_OF_KEY), key)
    return [row[0] for row in found]


def _decoded(blob: bytes) -> Any:
    """Stored JSON as data, or as text when it is not JSON (so it still shows)."""
    try:
        return json.loads(blob)
    except ValueError:
        return blob.decode("utf-8", errors="replace")


def _details(
    record: SagaRecord, history: list[SagaStep], timeouts: list[ScheduledMessage], now: float
) -> dict[str, Any]:
    return {
        **_summary(record, now),
        "state": _decoded(record.state),
        # Named as in ScheduledMessage and SagaStep, so scripts can use either.
        "timeouts": [asdict(timeout) for timeout in timeouts],
        "history": [asdict(step) for step in history],
        "compensations": _decoded(record.compensations),
    }


def _details_text(
    record: SagaRecord, history: list[SagaStep], timeouts: list[ScheduledMessage], now: float
) -> str:
    completed = record.completed_at
    lines = [
        f"saga:       {record.saga}",
        f"key:        {record.key}",
        f"status:     {record.status}",
        f"version:    {record.version}",
        f"created:    {_at(record.created_at)} ({_ago(record.created_at, now)})",
        f"updated:    {_at(record.updated_at)} ({_ago(record.updated_at, now)})",
        f"completed:  {'-' if completed is None else _at(completed)}",
        "state:",
        _pretty(record.state),
        "pending timeouts:" + ("" if timeouts else " none"),
        *(f"  {t.message_type}  {t.message_id}  {_due(t.due_at, now)}" for t in timeouts),
        "messages handled:" + ("" if history else " none"),
        *(f"  {s.message_id}  {s.message_type}  {_at(s.handled_at)}  {s.outcome}" for s in history),
        "compensations:",
        _pretty(record.compensations),
    ]
    return "\n".join(lines)


def _pretty(blob: bytes) -> str:
    """Stored JSON indented under its heading (as text when it is not JSON)."""
    try:
        text = json.dumps(json.loads(blob), indent=2, ensure_ascii=False)
    except ValueError:
        text = blob.decode("utf-8", errors="replace")
    return "\n".join("  " + line for line in text.splitlines())


def _at(timestamp: float) -> str:
    """A time as people read it, in UTC (the same on every server)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _ago(timestamp: float, now: float) -> str:
    return f"{_span(max(now - timestamp, 0.0))} ago"


def _due(due_at: float, now: float) -> str:
    if due_at >= now:
        return f"due in {_span(due_at - now)} (at {_at(due_at)})"
    # Not sent though due: the relay is behind, down, or failing to send it.
    return f"overdue by {_span(now - due_at)} (was due at {_at(due_at)})"


def _span(seconds: float) -> str:
    """A duration in its two largest units: ``45s``, ``14m 59s``, ``3h 5m``, ``2d 1h``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
