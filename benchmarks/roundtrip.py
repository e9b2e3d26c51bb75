"""What one database round trip costs in CPU on this machine: the floor of the store path.

    python -m benchmarks.roundtrip [--n 20000] [--pg-url URL] [--json PATH]

busline needs at least two round trips per handled message on PostgreSQL (the inbox record
before the handler, and the handler's own statement) and, on SQLite, one trip to aiosqlite's
thread per handler statement. No work on busline's own code takes a store-backed handler below
what those trips cost, so this measures them, each ``--n`` times after a warm-up:

- PostgreSQL ``SELECT 1`` through asyncpg over TCP, and over the server's Unix socket when it
  has one on this machine: this process's CPU, the server backend's CPU (``utime + stime`` from
  ``/proc/<pid>/stat``; "n/a" when the server runs elsewhere) and wall time, per round trip;
- one small SQLite INSERT (WAL, ``synchronous=NORMAL``, a commit every 100) through aiosqlite,
  and inline with :mod:`sqlite3` on the event loop's thread: this process's CPU (aiosqlite's
  thread included) and wall time, per statement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from benchmarks.machine import machine_info
from benchmarks.options import env_url
from benchmarks.spec import DEFAULT_PG_URL
from busline.urls import mask_url

PG_TCP, PG_UNIX = "PostgreSQL SELECT 1, TCP", "PostgreSQL SELECT 1, Unix socket"
SQLITE_THREAD, SQLITE_INLINE = "SQLite INSERT, aiosqlite", "SQLite INSERT, inline sqlite3"
#: Trips before each timed phase, so that connections, caches and prepared statements settle.
WARMUP = 300
COMMIT_EVERY = 100
_SQLITE_SETUP = """PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
CREATE TABLE trips (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);"""
_INSERT, _PAYLOAD = "INSERT INTO trips (payload) VALUES (?)", ("x" * 64,)


class Unreachable(Exception):
    """No connection to PostgreSQL (down, refusing, a wrong password): the row says so."""


@dataclass
class Row:
    """One measured path in µs per round trip (statement); ``note`` says what is missing, why."""

    path: str
    client_cpu_us: float | None = None
    server_cpu_us: float | None = None
    wall_us: float | None = None
    note: str = ""


def backend_cpu_seconds(pid: int) -> float | None:
    """``utime + stime`` of PostgreSQL process ``pid``, in seconds; None when this machine has
    no such process (the server runs elsewhere, or in another PID namespace)."""
    try:
        if b"postgres" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(
    path: str,
    n: int,
    batch: Callable[[int], Awaitable[None]],
    server_cpu: Callable[[], float | None] | None = None,
) -> Row:
    """Run ``batch(WARMUP)``, then time ``batch(n)``: µs per trip of this process's CPU, of the
    server's (when ``server_cpu`` can read it) and of wall time."""
    print(f"roundtrip: {path}, {n} trips", file=sys.stderr, flush=True)
    await batch(WARMUP)
    server_start = server_cpu() if server_cpu else None
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    await batch(n)
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    server_end = server_cpu() if server_cpu else None
    row = Row(path, client_cpu_us=cpu * 1e6 / n, wall_us=wall * 1e6 / n)
    if server_start is not None and server_end is not None:
        row.server_cpu_us = (server_end - server_start) * 1e6 / n
    elif server_cpu:
        row.note = "server CPU not readable from here"
    return row


def local_socket(directories: str | None, port: str) -> tuple[str, int] | None:
    """The directory and port of the server's Unix socket if it is on this machine: the first
    of its ``unix_socket_directories`` or, when this role may not read that setting (None), a
    listening socket named for its port in ``/proc/net/unix``."""
    name = f".s.PGSQL.{port}"
    if directories is None:
        try:
            lines = Path("/proc/net/unix").read_text().splitlines()
        except OSError:
            lines = []
        paths = (line.split(maxsplit=7)[-1] for line in lines)
        directories = ",".join(str(Path(p).parent) for p in paths if p.endswith(f"/{name}"))
    directory = directories.split(",")[0].strip()
    found = directory and Path(directory, name).exists()
    return (directory, int(port)) if found else None


async def _select_one(
    path: str, n: int, url: str, **override: Any
) -> tuple[Row, tuple[str, int] | None]:
    """``SELECT 1`` n times on one connection to ``url`` (``override`` replaces parts of it),
    and where the server's Unix socket is."""
    try:
        conn = await asyncpg.connect(url, timeout=10, **override)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Unreachable(type(exc).__name__) from exc
    try:
        pid, port = await conn.fetchrow("SELECT pg_backend_pid(), current_setting('port')")
        try:
            directories = await conn.fetchval("SHOW unix_socket_directories")
        except asyncpg.InsufficientPrivilegeError:  # superusers and pg_read_all_settings only
            directories = None

        async def batch(count: int) -> None:
            for _ in range(count):
                await conn.execute("SELECT 1")

        row = await _timed(path, n, batch, lambda: backend_cpu_seconds(pid))
        return row, local_socket(directories, port)
    finally:
        await conn.close()


async def measure_postgres(url: str, n: int) -> list[Row]:
    """The TCP row and the Unix-socket row; a row that could not be measured says why."""
    try:
        tcp, socket = await _select_one(PG_TCP, n, url)
    except Unreachable as exc:
        down = f"PostgreSQL unreachable at {mask_url(url)} ({exc})"
        return [Row(PG_TCP, note=down), Row(PG_UNIX, note="not tried: PostgreSQL unreachable")]
    if socket is None:
        return [tcp, Row(PG_UNIX, note="no Unix socket here")]
    try:
        unix, _ = await _select_one(PG_UNIX, n, url, host=socket[0], port=socket[1])
    except Unreachable as exc:
        unix = Row(PG_UNIX, note=f"connecting to the Unix socket failed ({exc})")
    return [tcp, unix]


async def measure_sqlite(n: int) -> list[Row]:
    """One small INSERT n times through aiosqlite, then inline with sqlite3; each path writes a
    WAL database of its own in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="busline-roundtrip-") as tmp:
        async with aiosqlite.connect(Path(tmp, "thread.db")) as db:
            await db.executescript(_SQLITE_SETUP)

            async def through_thread(count: int) -> None:
                for i in range(1, count + 1):
                    await db.execute(_INSERT, _PAYLOAD)
                    if i % COMMIT_EVERY == 0:
                        await db.commit()

            thread = await _timed(SQLITE_THREAD, n, through_thread)
        with closing(sqlite3.connect(Path(tmp, "inline.db"))) as conn:
            conn.executescript(_SQLITE_SETUP)

            async def inline(count: int) -> None:
                for i in range(1, count + 1):
                    conn.execute(_INSERT, _PAYLOAD)
                    if i % COMMIT_EVERY == 0:
                        conn.commit()

            return [thread, await _timed(SQLITE_INLINE, n, inline)]


async def run(n: int, pg_url: str) -> dict[str, Row]:
    """Every row, keyed by its path (``PG_TCP``, ``PG_UNIX``, ``SQLITE_THREAD``, ...)."""
    rows = [*await measure_postgres(pg_url, n), *await measure_sqlite(n)]
    return {row.path: row for row in rows}


def summary_table(rows: dict[str, Row]) -> str:
    """The rows as a markdown table, µs per round trip (statement)."""
    lines = ["| path | client CPU µs | server CPU µs | wall µs | note |", "|---|--:|--:|--:|---|"]
    for row in rows.values():
        figures = (row.client_cpu_us, row.server_cpu_us, row.wall_us)
        cells = " | ".join("n/a" if us is None else f"{us:.1f}" for us in figures)
        lines.append(f"| {row.path} | {cells} | {row.note} |")
    return "\n".join(lines)


def conclusion(rows: dict[str, Row]) -> str:
    """One line: the CPU of a PostgreSQL round trip, and what a trip to aiosqlite's thread adds."""
    tcp, thread, inline = rows[PG_TCP], rows[SQLITE_THREAD], rows[SQLITE_INLINE]
    postgres = "PostgreSQL was not measured"
    client, server = tcp.client_cpu_us, tcp.server_cpu_us
    if client is not None and server is None:
        postgres = f"a PostgreSQL round trip costs {client:.0f} µs of client CPU (server n/a)"
    elif client is not None and server is not None:
        postgres = f"a PostgreSQL round trip costs {client + server:.0f} µs of CPU here "
        postgres += f"({client:.0f} client + {server:.0f} server)"
    via_thread, direct = thread.client_cpu_us or 0.0, inline.client_cpu_us or 0.0
    return (
        f"{postgres}; a trip to aiosqlite's thread costs {via_thread - direct:.0f} µs more CPU "
        f"than the same statement inline ({via_thread:.0f} vs {direct:.1f} µs)"
    )


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and the conclusion, and write ``--json`` if asked."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.roundtrip", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--n", type=int, default=20_000, help="round trips per path")
    parser.add_argument("--pg-url", help="default: $BUSLINE_BENCH_PG_URL, $BUSLINE_TEST_PG_URL")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    pg_url = env_url(args.pg_url, "PG", DEFAULT_PG_URL)
    rows = asyncio.run(run(args.n, pg_url))
    machine = machine_info()
    print(f"{args.n} round trips per path; {machine['cpu']}, {machine['cpus']} CPUs")
    print(f"PostgreSQL: {mask_url(pg_url)}\n\n{summary_table(rows)}\n\n{conclusion(rows)}")
    if args.json:
        figures = {"n": args.n, "pg_url": mask_url(pg_url), "machine": machine}
        figures |= {"rows": [asdict(row) for row in rows.values()], "conclusion": conclusion(rows)}
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
