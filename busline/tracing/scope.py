"""The tracing scope of the message being handled, and the retry helper for custom middleware.

Free of OpenTelemetry imports on purpose: code inside the middleware stack may call
:func:`record_retry` unconditionally, and an untraced bus must not pay for loading the API.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from busline.context import Context

#: Set by the tracing middleware around the rest of the chain (its process span and what it
#: learnt); ``None`` outside. A context variable rather than ``ctx.items``, which retries clear.
current: ContextVar[Any] = ContextVar("busline_tracing_scope", default=None)


def record_retry(ctx: Context, error: BaseException, *, delay: float = 0.0) -> None:
    """Report that attempt ``ctx.attempt`` failed and is made again after ``delay`` seconds.

    For middleware that retries by itself: it reports an :class:`~busline.outcomes.Outcome` of
    kind ``RETRY`` (what busline's own retry middleware does), which tracing records as a
    ``busline.retry`` event and counts in ``busline.retries``.
    """
    ctx.report_retry(error, delay)
