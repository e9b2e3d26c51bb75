"""Middleware: one shape for every concern, composed once when the bus starts (an onion, never
rebuilt per message).

Subclass :class:`Middleware` and override what you need::

    class Timing(Middleware):
        async def on_consume(self, ctx, call_next):
            started = time.perf_counter()
            try:
                await call_next(ctx)
            finally:
                log.info("%s took %.3fs", ctx.message_type, time.perf_counter() - started)

The four hooks, each optional:

* ``on_consume(ctx, call_next)`` wraps the handling of one incoming message (every attempt of
  it: immediate retries run inside). An exception it lets out counts as a handler failure.
* ``on_publish(out, call_next)`` wraps every send and publish to the transport, once per time a
  message leaves: sent directly, sent after its handler or transaction committed, or sent by the
  outbox relay from its stored row (then ``out.relayed`` is true and ``out.message`` is ``None``:
  only the envelope was stored).
* ``on_create(out)`` runs once when a message is built, before anything holds or stores it: a
  header set here travels with the message through the outbox.
* ``on_outcome(outcome)`` hears what became of a delivery or of one attempt at it (an immediate
  retry, a delayed retry, the error queue): see :mod:`busline.outcomes`.

A middleware declares the per-handler options it understands in :attr:`Middleware.handler_options`;
a handler declared with an option no middleware understands is refused at once.

Settling (ack, delayed retry, error queue) happens in the consumer, outside all middleware, so a
middleware bug cannot lose a message: every delivery is settled exactly once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from busline.outcomes import NO_OBSERVERS, Outcome, Outcomes

if TYPE_CHECKING:
    from busline.context import Context
    from busline.outgoing import OutgoingMessage

ConsumeNext = Callable[["Context"], Awaitable[None]]
PublishNext = Callable[["OutgoingMessage"], Awaitable[None]]
#: Checks one handler option's value; returns an error text, or ``None`` when it is fine.
OptionCheck = Callable[[Any], "str | None"]


class Middleware:
    """Base class; each hook by default does nothing but call the next layer."""

    #: The per-handler options this middleware reads from ``ctx.handler.options``, each with a
    #: check of its value (e.g. ``{"retry": check_retry_policy}``).
    handler_options: ClassVar[Mapping[str, OptionCheck]] = {}

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Wrap the handling of one incoming message."""
        await call_next(ctx)

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        """Wrap one send or publish to the transport."""
        await call_next(out)

    def on_create(self, out: OutgoingMessage) -> None:
        """See a message as it is built (e.g. to add headers that must be stored with it)."""

    def on_outcome(self, outcome: Outcome) -> None:
        """Hear a retry, a delayed retry or a move to the error queue."""


def overrides(mw: Middleware, hook: str) -> bool:
    """Whether ``mw`` implements ``hook`` itself (layers that only pass through are skipped)."""
    return getattr(type(mw), hook) is not getattr(Middleware, hook)


def compose_consume(middlewares: Sequence[Middleware], terminal: ConsumeNext) -> ConsumeNext:
    """Build the consume chain, first middleware outermost; skips ones that don't consume."""
    chain = terminal
    for mw in reversed(middlewares):
        if overrides(mw, "on_consume"):
            chain = _bind_consume(mw, chain)
    return chain


def compose_publish(middlewares: Sequence[Middleware], terminal: PublishNext) -> PublishNext:
    """Build the publish chain, first middleware outermost; skips ones that don't publish."""
    chain = terminal
    for mw in reversed(middlewares):
        if overrides(mw, "on_publish"):
            chain = _bind_publish(mw, chain)
    return chain


def outcomes_of(middlewares: Sequence[Middleware]) -> Outcomes:
    """The fan-out of outcomes to every middleware that implements ``on_outcome``."""
    observers = [mw.on_outcome for mw in middlewares if overrides(mw, "on_outcome")]
    return Outcomes(observers) if observers else NO_OBSERVERS


def _bind_consume(mw: Middleware, call_next: ConsumeNext) -> ConsumeNext:
    # A partial, not a wrapping coroutine: calling it makes the hook's own coroutine, so each
    # layer costs one frame per message instead of two.
    return functools.partial(mw.on_consume, call_next=call_next)


def _bind_publish(mw: Middleware, call_next: PublishNext) -> PublishNext:
    return functools.partial(mw.on_publish, call_next=call_next)


__all__ = [
    "ConsumeNext",
    "Middleware",
    "OptionCheck",
    "PublishNext",
    "compose_consume",
    "compose_publish",
    "outcomes_of",
    "overrides",
]
