"""The tracing scope of the message being handled, for code inside the middleware stack.

Free of OpenTelemetry imports on purpose: the core (e.g. the retry middleware) calls
:func:`record_retry` unconditionally, and an untraced bus must not pay for loading the API.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from busline.context import Context


class Recorder(Protocol):
    """What the tracing middleware makes reachable while a message is being processed."""

    def retry(self, ctx: Context, error: BaseException, delay: float) -> None:
        """Record that the current attempt failed and will be retried after ``delay`` s."""


#: Set by the tracing middleware around the rest of the chain; ``None`` when tracing is off.
#: A context variable rather than ``ctx.items``, which retries clear between attempts.
current: ContextVar[Recorder | None] = ContextVar("busline_tracing_scope", default=None)


def record_retry(ctx: Context, error: BaseException, *, delay: float = 0.0) -> None:
    """Record on the process span that attempt ``ctx.attempt`` failed and will be retried.

    Call it from inside the middleware stack before retrying (immediate retries): it adds a
    ``busline.retry`` event and counts ``busline.retries``. Delayed retries
    (:class:`~busline.retries.RetryLater`) need no call: the tracing middleware records them as
    the exception passes. Costs one context-variable read when tracing is off.
    """
    recorder = current.get()
    if recorder is not None:
        recorder.retry(ctx, error, delay)
