"""The fault switches (``--decline-rate``, ``--crash-rate``, ...) and what they cause, counted.

Decisions are drawn from a hash of the order id and a seed, not from a shared random stream:
the same order gets the same answer on every attempt and in every process, so a retried charge
is declined again (as a real gateway would) and a run can be repeated exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field

from busline import Context
from busline.middleware import Middleware, PublishNext
from busline.outcomes import Outcome, OutcomeKind
from busline.outgoing import OutgoingMessage

#: A crash is transient: a message crashes on at most this many attempts, so the retry policy
#: (immediate retries, then delayed ones) always gets it through and every order still ends.
CRASHING_ATTEMPTS = 2


class InjectedCrash(RuntimeError):
    """The failure ``--crash-rate`` injects after a handler wrote its rows."""


def chance(seed: int, *parts: object) -> float:
    """A number in [0, 1) that depends only on ``seed`` and ``parts``."""
    text = "/".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2**64


@dataclass
class Faults:
    """What the user switched on; the default injects nothing."""

    decline_rate: float = 0.0
    shortage_rate: float = 0.0
    duplicate_rate: float = 0.0
    #: Service -> seconds each of its handlers takes.
    slow: dict[str, float] = field(default_factory=dict)
    #: Service -> probability that a handler attempt raises after writing.
    crash: dict[str, float] = field(default_factory=dict)
    seed: int = 13

    def declines(self, order_id: str) -> bool:
        """Whether the card gateway declines ``order_id``."""
        return chance(self.seed, "decline", order_id) < self.decline_rate

    def short(self, order_id: str) -> bool:
        """Whether inventory finds the shelf empty for ``order_id``."""
        return chance(self.seed, "shortage", order_id) < self.shortage_rate

    async def work(self, service: str, ctx: Context) -> None:
        """Run where the handler has written its rows: be slow, then maybe crash (which rolls
        the rows back and makes busline retry the message)."""
        delay = self.slow.get(service, 0.0)
        if delay:
            await asyncio.sleep(delay)
        rate = self.crash.get(service, 0.0)
        if (
            rate
            and ctx.attempt <= CRASHING_ATTEMPTS
            and chance(self.seed, "crash", ctx.message_id, ctx.attempt) < rate
        ):
            raise InjectedCrash(f"{service} crashed after writing (attempt {ctx.attempt})")


@dataclass
class Tally:
    """What the buses of this process reported: retries, parked messages, duplicates."""

    retries: int = 0
    parked: int = 0
    duplicates_sent: int = 0
    duplicates_absorbed: int = 0


class FaultMiddleware(Middleware):
    """Injects duplicates as they leave, and counts retries and parked messages.

    A duplicate is the same envelope sent twice (same message id and idempotency key): what a
    broker redelivery or a relay resending after a crash looks like to the consumer, whose
    inbox must absorb it.
    """

    def __init__(self, faults: Faults, tally: Tally) -> None:
        self.faults = faults
        self.tally = tally

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        """Send, and with ``duplicate_rate`` send the very same envelope again."""
        await call_next(out)
        rate = self.faults.duplicate_rate
        envelope = out.envelope
        if rate and chance(self.faults.seed, "duplicate", envelope.message_id) < rate:
            self.tally.duplicates_sent += 1
            await call_next(out)

    def on_outcome(self, outcome: Outcome) -> None:
        """Count retries (immediate and delayed) and messages moved to the error queue."""
        if outcome.kind is OutcomeKind.DEAD_LETTERED:
            self.tally.parked += 1
        else:
            self.tally.retries += 1


class DuplicateCounter(logging.Handler):
    """Counts the inbox's "already processed" notes: each one is a duplicate absorbed.

    The inbox logs every message it acknowledges without handling; listening to that log is
    how this process learns about it without reaching into busline's internals.
    """

    def __init__(self, tally: Tally) -> None:
        super().__init__(logging.INFO)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        """Count one absorbed duplicate."""
        if "already processed" in record.msg:
            self.tally.duplicates_absorbed += 1

    def install(self, propagate: bool = False) -> None:
        """Listen to busline's inbox logger at INFO; its notes reach the console only when
        ``propagate`` (``--verbose``)."""
        logger = logging.getLogger("busline.inbox")
        logger.setLevel(logging.INFO)
        logger.propagate = propagate
        logger.addHandler(self)

    def remove(self) -> None:
        """Stop listening."""
        logging.getLogger("busline.inbox").removeHandler(self)
