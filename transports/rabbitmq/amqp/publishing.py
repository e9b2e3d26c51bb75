"""Publishing and acknowledging on a channel: frames written at once, no lock, no task.

A publish is its method frame (cached per exchange, routing key and mandatory flag: pamqp
encodes it once), its content header (the properties' ``marshal()``, or bytes already encoded)
and its body frames, split by the negotiated ``frame_max``. In confirm mode the delivery tag is
taken as the frames are written, so tags always match the broker's count. Acks are one
13-byte frame each, written with everything else in the same loop iteration.
"""

from __future__ import annotations

import asyncio

from pamqp.commands import Basic

from . import codec
from .confirms import Confirms
from .protocol import FrameProtocol

_CACHE_LIMIT = 4096


class Publishing:
    """The publish and acknowledgement methods of :class:`~.channel.Channel`."""

    id: int
    confirms: Confirms | None
    closed: asyncio.Future[BaseException | None]
    _frames: dict[tuple[str, str, bool], bytes]
    _flow: asyncio.Future[None] | None
    _protocol: FrameProtocol
    _loop: asyncio.AbstractEventLoop

    def error(self) -> BaseException:
        """What an operation on the closed channel raises (implemented by the channel)."""
        raise NotImplementedError

    @property
    def _frame_max(self) -> int:
        raise NotImplementedError

    def _blocked(self) -> bool:
        raise NotImplementedError

    async def _wait_unblocked(self) -> None:
        raise NotImplementedError

    def publish_nowait(
        self,
        body: bytes,
        exchange: str,
        routing_key: str,
        properties: Basic.Properties | bytes | None = None,
        mandatory: bool = False,
    ) -> asyncio.Future[None] | None:
        """Write a publish now; in confirm mode return the future of its confirm.

        ``properties`` may be pre-encoded (flags and values, as ``marshal()`` returns them).
        Callers that can wait should use :meth:`publish`, which honours flow control.
        """
        if self.closed.done():
            raise self.error()
        key = (exchange, routing_key, mandatory)
        method = self._frames.get(key)
        if method is None:
            if len(self._frames) >= _CACHE_LIMIT:
                self._frames.clear()
            method = self._frames[key] = codec.publish_frame(self.id, *key)
        frames = [method]
        codec.content_frames(
            self.id, codec.encode_properties(properties), body, self._frame_max, frames
        )
        future = None
        if self.confirms is not None:
            future = self._loop.create_future()
            message_id = properties.message_id if isinstance(properties, Basic.Properties) else None
            self.confirms.add(future, mandatory, exchange, routing_key, message_id)
        self._protocol.write_many(frames)
        return future

    async def publish(
        self,
        body: bytes,
        exchange: str,
        routing_key: str,
        properties: Basic.Properties | bytes | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish, waiting while the broker or the socket holds publishers back; in confirm
        mode, return once the broker confirmed (raising :class:`~.errors.NackedError`,
        :class:`~.errors.UnroutableError`, or the channel's or connection's close reason)."""
        while self._flow is not None or self._blocked() or self._protocol.paused:
            await self.wait_ready()
        future = self.publish_nowait(body, exchange, routing_key, properties, mandatory)
        if future is not None:
            await future

    async def wait_ready(self) -> None:
        """Until publishing may go on: not blocked, not paused by flow, socket has room."""
        if self._flow is not None:
            await asyncio.shield(self._flow)
        await self._wait_unblocked()
        await self._protocol.wait_writable()
        if self.closed.done():
            raise self.error()

    # -- acknowledgements -------------------------------------------------------------------

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """``Basic.Ack`` (written with this loop iteration's other frames)."""
        if self.closed.done():
            raise self.error()
        self._protocol.write(codec.ack_frame(self.id, delivery_tag, multiple))

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        """``Basic.Nack``."""
        if self.closed.done():
            raise self.error()
        self._protocol.write(codec.nack_frame(self.id, delivery_tag, multiple, requeue))

    def reject(self, delivery_tag: int, requeue: bool = True) -> None:
        """``Basic.Reject``."""
        if self.closed.done():
            raise self.error()
        self._protocol.write(codec.reject_frame(self.id, delivery_tag, requeue))
