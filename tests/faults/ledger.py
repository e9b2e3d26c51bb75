"""What every scenario measures, and how: effects counted in the database by business key.

Each consumer's handler adds one to its key's row in ``fault_effects`` in the handler's own
store transaction, so the count is exactly how often the effect was applied: a missing key is a
lost message, a count above one a duplicate effect. Duplicates the inbox absorbed are counted
from busline's own log line for them ("already processed; acknowledged without handling").
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from busline import Bus, Command, Context, RetryPolicy

EFFECTS_DDL = "CREATE TABLE IF NOT EXISTS fault_effects (key TEXT PRIMARY KEY, n INT NOT NULL)"
EFFECT_SQL = (
    "INSERT INTO fault_effects (key, n) VALUES ($1, 1) "
    "ON CONFLICT (key) DO UPDATE SET n = fault_effects.n + 1"
)
DUPLICATE_TEXT = "already processed; acknowledged without handling"


class Work(Command, wire_name="faults.Work"):
    """The one command of the suite: a business key whose effect must happen exactly once."""

    key: str
    pad: str = ""


@dataclass
class Result:
    """One row of the report."""

    scenario: str
    sent: int = 0
    handled: int = 0
    lost: int = 0
    absorbed: int = 0
    dup_effects: int = 0
    parked: int = 0
    #: seconds from the end of the fault (or its start, for faults busline must detect itself)
    #: until the next effect was committed; None when it never came within the deadline
    recovery: float | None = None
    #: what else was measured, e.g. "peak RSS +12 MB", "held 30.0 s"
    notes: list[str] = field(default_factory=list)
    #: the scenario's own verdicts, name -> passed (the pytest entry asserts them)
    checks: dict[str, bool] = field(default_factory=dict)
    finished: bool = True

    def check(self, name: str, passed: bool) -> None:
        self.checks[name] = bool(passed)

    @property
    def ok(self) -> bool:
        return self.finished and all(self.checks.values())


class DuplicateCounter(logging.Handler):
    """Counts busline's "duplicate acknowledged without handling" log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if DUPLICATE_TEXT in record.getMessage():
            self.count += 1

    def __enter__(self) -> DuplicateCounter:
        logger = logging.getLogger("busline.inbox")
        logger.addHandler(self)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("busline.inbox").removeHandler(self)


async def prepare(store_url: str) -> None:
    """Create the effects table in ``store_url``'s database."""
    conn = await asyncpg.connect(store_url)
    try:
        await conn.execute(EFFECTS_DDL)
    finally:
        await conn.close()


def consumer_bus(url: str, store_url: str, *, delay: float = 0.0, **options: Any) -> Bus:
    """A bus handling :class:`Work` with the inbox: one effect per key, ``delay`` seconds of
    work inside the transaction (a busy handler holds its database connection meanwhile)."""
    options.setdefault("prefetch", 32)
    options.setdefault("retry", RetryPolicy(immediate=3, delays=(1, 5, 10, 30)))
    bus = Bus("faults-consumer", url, store=store_url, **options)

    @bus.command_handler
    async def work(cmd: Work, ctx: Context) -> None:
        if delay:
            await asyncio.sleep(delay)  # the handler's own work, not a synchronisation
        await ctx.db.execute(EFFECT_SQL, cmd.key)

    return bus


class Effects:
    """Reads ``fault_effects`` from outside busline and keeps a timeline of progress."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url
        #: (monotonic time, keys with an effect) samples taken by :meth:`watch`
        self.timeline: list[tuple[float, int]] = []

    async def counts(self) -> dict[str, int]:
        """Effects per key, read in a connection of their own (the database must be up)."""
        conn = await asyncpg.connect(self.store_url, timeout=5)
        try:
            rows = await conn.fetch("SELECT key, n FROM fault_effects")
        finally:
            await conn.close()
        return {row["key"]: row["n"] for row in rows}

    async def handled(self) -> int:
        """Keys with an effect (0 while the database is unreachable: the caller polls)."""
        try:
            conn = await asyncpg.connect(self.store_url, timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return self.timeline[-1][1] if self.timeline else 0
        try:
            return int(await conn.fetchval("SELECT count(*) FROM fault_effects"))
        except (OSError, asyncpg.PostgresError):
            return self.timeline[-1][1] if self.timeline else 0
        finally:
            await conn.close()

    async def watch(self, interval: float = 0.1) -> None:
        """Sample progress until cancelled (run it as a task)."""
        while True:
            self.timeline.append((time.monotonic(), await self.handled()))
            await asyncio.sleep(interval)  # a sampling period, not a wait for something

    async def wait_for(self, target: int, deadline: float) -> bool:
        """Poll until ``target`` keys have an effect or the monotonic ``deadline`` passes."""
        while time.monotonic() < deadline:
            if await self.handled() >= target:
                return True
            await asyncio.sleep(0.1)
        return False

    async def mark(self) -> float:
        """Take a sample now and return its time: the base :meth:`resumed_after` measures from
        (call it once nothing of the old run can commit any more, e.g. after a kill)."""
        moment = time.monotonic()
        self.timeline.append((moment, await self.handled()))
        self.timeline.sort()
        return moment

    def longest_pause(self, moment: float) -> float | None:
        """The longest time after ``moment`` without a new effect, until the last one came: how
        long handling stopped, for a fault it may not stop for at all (a cluster node)."""
        samples = [(t, n) for t, n in self.timeline if t >= moment]
        if len(samples) < 2:
            return None
        final = samples[-1][1]
        longest, last_change, last_n = 0.0, samples[0][0], samples[0][1]
        for t, n in samples[1:]:
            if n != last_n:
                longest = max(longest, t - last_change)
                last_change, last_n = t, n
            if n >= final:
                break
        return round(longest, 2)

    def resumed_after(self, moment: float, slack: int = 0) -> float | None:
        """Seconds from ``moment`` until the count grew more than ``slack`` past its value at
        ``moment``. ``slack`` covers work already delivered before a fault busline must notice
        itself (a cut, a stall): those handlers may still commit without the broker."""
        before = [n for t, n in self.timeline if t <= moment]
        base = (before[-1] if before else 0) + slack
        for t, n in self.timeline:
            if t > moment and n > base:
                return round(t - moment, 2)
        return None


async def settle(result: Result, effects: Effects, keys: set[str]) -> None:
    """Fill ``handled``, ``lost`` and ``dup_effects`` of ``result`` for the ``keys`` sent."""
    counts = await effects.counts()
    result.sent = len(keys)
    result.handled = len(keys & counts.keys())
    result.lost = len(keys - counts.keys())
    result.dup_effects = sum(n - 1 for key, n in counts.items() if key in keys and n > 1)
    result.check("nothing lost", result.lost == 0)
    result.check("no duplicate effect", result.dup_effects == 0)
