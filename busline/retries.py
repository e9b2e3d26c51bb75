"""Recoverability: immediate retries in process, then delayed retries held by the broker, then the
error queue. A message is never dropped and never spun in a hot loop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from busline.context import Context
from busline.errors import Reject
from busline.middleware import ConsumeNext, Middleware, OptionCheck
from busline.stores.errors import GroupCommitError

#: Times a message is run again at once, uncounted, after the transaction it shared with others
#: failed (each time alone: see docs/outbox.md, "Shared commits"); then such a failure counts.
SHARED_FAILURE_RERUNS = 3

#: Header counting the delayed retries a message has had (0 when absent).
HEADER_DELAYED_RETRIES = "busline-delayed-retries"
#: Header carrying the failure that caused the latest delayed retry, for whoever inspects it.
HEADER_LAST_ERROR = "busline-last-error"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and when a failed message is tried again.

    Args:
        immediate: Extra attempts made at once, in process, after a failure.
        delays: Seconds to wait before each delayed round (each round again makes
            ``immediate + 1`` attempts). ``RetryPolicy(immediate=0, delays=())`` never retries.
        non_retryable: Exception types that go straight to the error queue, like
            :class:`busline.Reject` and decode errors always do.
    """

    immediate: int = 3
    delays: Sequence[float] = (1.0, 10.0, 60.0)
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.immediate < 0:
            raise ValueError("immediate retries cannot be negative")
        if any(delay <= 0 for delay in self.delays):
            raise ValueError("every delay must be a positive number of seconds")
        object.__setattr__(self, "delays", tuple(float(d) for d in self.delays))

    @property
    def window(self) -> float:
        """Seconds from the first failure to the last delayed retry (a lower bound)."""
        return float(sum(self.delays))

    @property
    def max_attempts(self) -> int:
        """Handler invocations before a message is parked, if it always fails."""
        return (self.immediate + 1) * (len(self.delays) + 1)

    def retryable(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another attempt."""
        return not isinstance(error, (Reject, *self.non_retryable))


#: The policy that never retries.
NO_RETRIES = RetryPolicy(immediate=0, delays=())


class RetryLater(Exception):
    """Raised to the dispatcher: settle by redelivering after ``delay`` seconds."""

    def __init__(self, delay: float, round_number: int) -> None:
        super().__init__(f"retry in {delay}s (delayed round {round_number})")
        self.delay = delay
        self.round_number = round_number


def check_retry_option(value: Any) -> str | None:
    """The check of the ``retry=`` handler option."""
    if isinstance(value, RetryPolicy):
        return None
    return f"retry= takes a RetryPolicy, got {value!r}"


class RetryMiddleware(Middleware):
    """Runs the inner chain up to ``immediate + 1`` times, then asks for a delayed retry.

    Each attempt starts clean: outgoing messages and per-message state of a failed attempt are
    discarded, so only the successful attempt's effects leave. Each immediate retry is reported
    as an :class:`~busline.outcomes.Outcome` of kind ``RETRY``. A
    :class:`~busline.stores.errors.GroupCommitError` (the store transaction shared with others
    failed, maybe by another's fault) is run again at once without counting, whatever the
    policy, up to :data:`SHARED_FAILURE_RERUNS` times.
    """

    handler_options: ClassVar[Mapping[str, OptionCheck]] = {"retry": check_retry_option}

    def __init__(self, default: RetryPolicy) -> None:
        self.default = default

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Retry ``call_next`` according to the handler's (or the bus's) policy."""
        policy = policy_for(ctx, self.default)
        attempts_left = policy.immediate
        shared_left = SHARED_FAILURE_RERUNS
        while True:
            try:
                await call_next(ctx)
                return
            except Exception as error:
                if isinstance(error, GroupCommitError) and shared_left > 0:
                    # The transaction it shared with others failed, maybe through another's
                    # fault: run it again at once (the store runs it alone), not counted.
                    shared_left -= 1
                elif not policy.retryable(error):
                    raise
                elif attempts_left > 0:
                    attempts_left -= 1
                else:
                    later = delayed_retry(policy, ctx)
                    if later is not None:
                        raise later from error
                    raise
                ctx.report_retry(error)
                ctx.outgoing.clear()
                ctx.items.clear()
                ctx.committed = None
                ctx.attempt += 1


def policy_for(ctx: Context, default: RetryPolicy) -> RetryPolicy:
    """The retry policy of the handler running in ``ctx`` (its own, else the bus's)."""
    policy: RetryPolicy = ctx.handler.options.get("retry") or default
    return policy


def delayed_retry(policy: RetryPolicy, ctx: Context) -> RetryLater | None:
    """The next delayed round for the message of ``ctx``, or ``None`` once they are used up."""
    done = _delayed_rounds(ctx)
    if done < len(policy.delays):
        return RetryLater(policy.delays[done], done + 1)
    return None


def _delayed_rounds(ctx: Context) -> int:
    value = ctx.envelope.headers.get(HEADER_DELAYED_RETRIES, 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
