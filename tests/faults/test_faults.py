"""The short fault suite: every scenario against real servers, asserting what busline already
guarantees (nothing lost, no duplicate effect, bad messages parked, consumer alive). What a
known defect breaks today is asserted separately, as a strict xfail naming the defect: the fix
turns it into an XPASS failure, and the marker must go."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.conftest import Outcomes
from tests.faults.ledger import Result
from tests.faults.scenarios import SCENARIOS

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

#: (scenario, row, check) -> the defect that makes the check fail today (issue 15).
KNOWN_DEFECTS: dict[tuple[str, str, str], str] = {}


def _known(name: str, result: Result) -> set[str]:
    return {check for (n, row, check) in KNOWN_DEFECTS if n == name and row == result.scenario}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario_holds_what_busline_guarantees(name: str, outcomes: Outcomes) -> None:
    """Every check of every row holds, except those of a known defect (asserted below)."""
    for result in await outcomes.of(name):
        known = _known(name, result)
        if known and not result.finished:
            continue  # the defect kept the row from running at all: the xfail below covers it
        assert result.finished, f"{result.scenario} did not finish: {result.notes}"
        failed = [c for c, passed in result.checks.items() if not passed and c not in known]
        assert not failed, f"{result.scenario}: {failed} ({'; '.join(result.notes)})"


def known_defects() -> list[Any]:
    """One strict xfail per known defect; none today, so nothing is collected (no skip)."""
    return [
        pytest.param(*key, marks=pytest.mark.xfail(strict=True, reason=reason), id=key[0])
        for key, reason in KNOWN_DEFECTS.items()
    ]


if KNOWN_DEFECTS:

    @pytest.mark.parametrize(("name", "row", "check"), known_defects())
    async def test_known_defect(name: str, row: str, check: str, outcomes: Outcomes) -> None:
        """Fails today because of the defect named in its xfail reason."""
        [result] = [r for r in await outcomes.of(name) if r.scenario == row]
        assert result.checks.get(check), f"{row}: {check} failed ({'; '.join(result.notes)})"
