"""Middleware: one call shape, composed once when the bus starts (an onion, never per message).

Subclass :class:`Middleware` and override ``on_consume`` and/or ``on_publish``::

    class Timing(Middleware):
        async def on_consume(self, ctx, call_next):
            started = time.perf_counter()
            try:
                await call_next(ctx)
            finally:
                log.info("%s took %.3fs", ctx.message_type, time.perf_counter() - started)

Consume middleware wraps the handler; publish middleware wraps every send and publish. Settling
(ack, error queue) happens in the dispatcher, outside all middleware, so a middleware bug cannot
lose a message; an exception a middleware lets out counts as a handler failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from busline.context import Context, OutgoingMessage

ConsumeNext = Callable[[Context], Awaitable[None]]
PublishNext = Callable[[OutgoingMessage], Awaitable[None]]


class Middleware:
    """Base class; the default hooks just call the next layer."""

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Wrap the handling of one incoming message."""
        await call_next(ctx)

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        """Wrap the sending or publishing of one outgoing message."""
        await call_next(out)


def compose_consume(middlewares: Sequence[Middleware], terminal: ConsumeNext) -> ConsumeNext:
    """Build the consume chain, first middleware outermost; skips ones that don't consume."""
    chain = terminal
    for mw in reversed(middlewares):
        if type(mw).on_consume is not Middleware.on_consume:
            chain = _bind_consume(mw, chain)
    return chain


def compose_publish(middlewares: Sequence[Middleware], terminal: PublishNext) -> PublishNext:
    """Build the publish chain, first middleware outermost; skips ones that don't publish."""
    chain = terminal
    for mw in reversed(middlewares):
        if type(mw).on_publish is not Middleware.on_publish:
            chain = _bind_publish(mw, chain)
    return chain


def _bind_consume(mw: Middleware, call_next: ConsumeNext) -> ConsumeNext:
    hook = mw.on_consume

    async def layer(ctx: Context) -> None:
        await hook(ctx, call_next)

    return layer


def _bind_publish(mw: Middleware, call_next: PublishNext) -> PublishNext:
    hook = mw.on_publish

    async def layer(out: OutgoingMessage) -> None:
        await hook(out, call_next)

    return layer


__all__ = ["ConsumeNext", "Middleware", "PublishNext", "compose_consume", "compose_publish"]
