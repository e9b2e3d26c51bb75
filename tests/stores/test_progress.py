"""How a claim's row-by-row outcome becomes each transaction's progress (no database needed)."""

from __future__ import annotations

from busline.envelope import Envelope
from busline.messages import MessageKind
from busline.stores import Claim, OutboxRow
from busline.stores.progress import claim_outcome


def _rows(tx_id: str, positions: range, first_id: int) -> list[OutboxRow]:
    envelope = Envelope("m", "stores.Step", b"{}", "m", "m")
    return [
        OutboxRow(first_id + i, tx_id, p, MessageKind.COMMAND, "q", envelope)
        for i, p in enumerate(positions)
    ]


def test_each_transaction_lands_in_exactly_one_list():
    done = _rows("done", range(0, 3), 1)
    resumed = _rows("resumed", range(2, 5), 10)  # its first two went in an earlier claim
    stopped = _rows("stopped", range(0, 3), 20)
    failed = _rows("failed", range(0, 3), 30)
    idle = _rows("idle", range(0, 2), 40)
    claim = Claim([*done, *resumed, *stopped, *failed, *idle])
    claim.sent = [r.id for r in done] + [r.id for r in resumed] + [stopped[0].id, failed[0].id]
    claim.failures = [(failed[1].id, "ConnectionError: down", 7.5)]

    outcome = claim_outcome(claim)

    assert sorted(outcome.finished) == ["done", "resumed"]
    assert outcome.advanced == [(1, "stopped")]  # position 1 is the next to send
    assert outcome.failed == [(1, 7.5, "ConnectionError: down", "failed")]
    assert outcome.untouched == ["idle"]
    assert outcome.partly_sent() == [("stopped", 1), ("failed", 1)]


def test_a_failure_at_a_transactions_first_unsent_row_keeps_its_place():
    rows = _rows("t", range(4, 6), 1)  # positions 0-3 went before
    claim = Claim(rows)
    claim.failures = [(rows[0].id, "boom", 3.0)]
    outcome = claim_outcome(claim)
    assert outcome.failed == [(4, 3.0, "boom", "t")]
    assert (outcome.finished, outcome.advanced, outcome.untouched) == ([], [], [])
