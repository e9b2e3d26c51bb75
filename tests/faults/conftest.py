"""The fault suite under pytest: the suite's own servers for the session (started here, not
by scripts/test: they are restarted, stalled and killed, so they cannot be the shared ones),
and each scenario run once however many tests read its result."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.faults.env import FaultEnv
from tests.faults.ledger import Result
from tests.faults.runner import run_scenario
from tests.faults.servers import ServerError


@pytest.fixture(scope="session")
def fault_env() -> Iterator[FaultEnv]:
    """The short run's servers; unavailable servers skip, or fail with CI=true."""
    try:
        env = FaultEnv.open(long=False)
    except ServerError as exc:
        reason = f"the fault suite's own servers did not start: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield env
    finally:
        env.shut()


class Outcomes:
    """Results of the scenarios run so far in this session, by scenario name."""

    def __init__(self, env: FaultEnv) -> None:
        self.env = env
        self._done: dict[str, list[Result]] = {}

    async def of(self, name: str) -> list[Result]:
        if name not in self._done:
            self._done[name] = await run_scenario(name, self.env)
        return self._done[name]


@pytest.fixture(scope="session")
def outcomes(fault_env: FaultEnv) -> Outcomes:
    return Outcomes(fault_env)
