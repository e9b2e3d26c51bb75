"""What a relay's claim did to each of its transactions, as the stores record it.

A claim holds the unsent rows of some transactions; the relay reports row by row what it sent and
what failed. A transaction's progress is how far along its rows that got, since they go in order:
all of them (finished), part (advanced, and due again now), up to a failure (due again after a
backoff), or none (only released).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from busline.stores.base import Claim


@dataclass(slots=True)
class ClaimOutcome:
    """Each claimed transaction in exactly one list."""

    #: Transactions whose every claimed row was sent.
    finished: list[str] = field(default_factory=list)
    #: ``(sent, tx_id)``: part of the rows went, none failed; ``sent`` is the next position.
    advanced: list[tuple[int, str]] = field(default_factory=list)
    #: ``(sent, retry_at, error, tx_id)``: the row at position ``sent`` failed.
    failed: list[tuple[int, float, str, str]] = field(default_factory=list)
    #: Nothing sent, nothing failed.
    untouched: list[str] = field(default_factory=list)

    def partly_sent(self) -> list[tuple[str, int]]:
        """``(tx_id, sent)`` of the unfinished transactions: their rows below ``sent`` went
        (possibly none), the rest wait."""
        return [
            *((tx_id, sent) for sent, tx_id in self.advanced),
            *((tx_id, sent) for sent, _, _, tx_id in self.failed),
        ]


def claim_outcome(claim: Claim) -> ClaimOutcome:
    """Sort the claim's transactions by what happened to their rows."""
    claimed: dict[str, int] = {}
    next_position: dict[str, int] = {}
    for row in claim.rows:
        claimed[row.tx_id] = claimed.get(row.tx_id, 0) + 1
        next_position[row.tx_id] = min(next_position.get(row.tx_id, row.position), row.position)
    by_id = {row.id: row for row in claim.rows}
    sent: dict[str, int] = {}
    for row_id in claim.sent:
        row = by_id[row_id]
        sent[row.tx_id] = sent.get(row.tx_id, 0) + 1
        next_position[row.tx_id] = max(next_position[row.tx_id], row.position + 1)
    outcome = ClaimOutcome()
    failed: set[str] = set()
    for row_id, error, retry_at in claim.failures:
        tx_id = by_id[row_id].tx_id
        failed.add(tx_id)
        outcome.failed.append((next_position[tx_id], retry_at, error, tx_id))
    for tx_id, count in claimed.items():
        if tx_id in failed:
            continue
        if sent.get(tx_id, 0) == count:
            outcome.finished.append(tx_id)
        elif tx_id in sent:
            outcome.advanced.append((next_position[tx_id], tx_id))
        else:
            outcome.untouched.append(tx_id)
    return outcome
