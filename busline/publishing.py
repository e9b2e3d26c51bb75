"""The one way out: every message that leaves goes through the publish chain to the transport.

Callers hand it :class:`~busline.outgoing.OutgoingMessage` objects: ``bus.send``/``bus.publish``
directly, a handler's or transaction's messages once they may leave (after success, after the
commit), and the outbox relay with what it stored (``relayed=True``, envelope only). Publish
middleware therefore sees every message each time it leaves, however it got there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from busline.errors import BusNotRunningError
from busline.messages import MessageKind
from busline.middleware import Middleware, PublishNext, compose_publish
from busline.outgoing import OutgoingMessage
from busline.transport import Transport


class Publisher:
    """The publish chain, ending at the transport. Returns once the broker confirmed."""

    __slots__ = ("_chain", "_service", "_transport", "direct")

    def __init__(self, service: str) -> None:
        self._service = service
        self._transport: Transport | None = None
        self._chain: PublishNext = self._to_transport
        #: The transport itself when no middleware publishes: sends skip a coroutine layer.
        self.direct: Transport | None = None

    def connect(self, transport: Transport, middleware: Sequence[Middleware]) -> None:
        """Compose the chain over ``transport`` (once, when the bus starts)."""
        self._transport = transport
        self._chain = compose_publish(middleware, self._to_transport)
        self.direct = transport if self._chain == self._to_transport else None

    def disconnect(self) -> None:
        """Forget the transport (the bus is stopping)."""
        self.direct = None
        self._transport = None

    @property
    def connected(self) -> bool:
        """Whether the transport could send right now."""
        transport = self._transport
        return transport is not None and transport.connected

    async def publish(self, out: OutgoingMessage) -> None:
        """Send one message through the chain; return once the broker confirmed it."""
        await self._chain(out)

    async def publish_all(self, outgoing: Sequence[OutgoingMessage]) -> None:
        """Send messages concurrently; return once all are confirmed, else raise the first
        failure (after every send has finished, so none is left running)."""
        if len(outgoing) == 1:
            await self._chain(outgoing[0])
            return
        results = await asyncio.gather(
            *(self._chain(out) for out in outgoing), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _to_transport(self, out: OutgoingMessage) -> None:
        transport = self._transport
        if transport is None:
            raise BusNotRunningError(f"bus {self._service!r} has no transport")
        if out.kind is MessageKind.COMMAND:
            await transport.send(out.destination, out.envelope)
        else:
            await transport.publish(out.destination, out.envelope)
