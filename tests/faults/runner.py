"""Running scenarios one after another, each bounded in time, a failure of one never keeping
the others from running: whatever goes wrong becomes a row of the report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.faults.env import FaultEnv
from tests.faults.ledger import Result
from tests.faults.scenarios import SCENARIOS

#: Hard bound of one scenario, over and above its own deadlines (which should end it first).
HARD_LIMIT = {False: 360.0, True: 1800.0}


async def run_scenario(name: str, env: FaultEnv) -> list[Result]:
    """Run scenario ``name``; an exception or the hard limit becomes an unfinished row."""
    began = time.monotonic()
    limit = asyncio.timeout(HARD_LIMIT[env.long])
    try:
        async with limit:
            outcome = await SCENARIOS[name](env)
    except Exception as exc:  # a row saying what broke, and the other scenarios still run
        if limit.expired():
            note = f"hung: over {HARD_LIMIT[env.long]:.0f} s"
        else:
            note = f"error: {type(exc).__name__}: {exc}"
        outcome = Result(name, finished=False, notes=[note])
    results = outcome if isinstance(outcome, list) else [outcome]
    for result in results:
        result.notes.append(f"scenario took {time.monotonic() - began:.0f} s")
    return results


async def run_all(
    env: FaultEnv, names: list[str], progress: Callable[[str], None] = print
) -> list[Result]:
    """Run ``names`` in order and return every row."""
    rows: list[Result] = []
    for name in names:
        progress(f"running {name} ...")
        for result in await run_scenario(name, env):
            verdict = "ok" if result.ok else "FAILED " + ", ".join(failures(result))
            progress(f"  {result.scenario}: {verdict}")
            rows.append(result)
    return rows


def failures(result: Result) -> list[str]:
    """What did not hold, by the names of the checks (and 'unfinished')."""
    failed = [name for name, passed in result.checks.items() if not passed]
    if not result.finished:
        failed.insert(0, "unfinished")
    return failed
