"""The socket: frames cut out of the byte stream, and writes coalesced per loop iteration.

An :class:`asyncio.Protocol`, not streams: ``data_received`` cuts every complete frame out of
what arrived and hands it on synchronously, so a burst of deliveries costs no task switches.

Writes are buffered during an iteration of the event loop and handed to the socket in one
piece at the end of it: with many publishes or acks in flight, one ``send()`` carries them all
(on loopback the kernel does the receiver's TCP work inside that call, so the number of calls
matters). When the socket's buffer fills up, asyncio pauses us; publishers then wait in
:meth:`FrameProtocol.wait_writable`, so a slow peer pushes back instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from .codec import FRAME_END, FRAME_HEAD
from .errors import ProtocolError

log = logging.getLogger("busline.amqp")

#: ``(frame type, channel, payload)``, called for every frame, in order.
FrameHandler = Callable[[int, int, bytes], None]
LostHandler = Callable[[BaseException | None], None]


class FrameProtocol(asyncio.Protocol):
    """One AMQP socket."""

    def __init__(self, on_frame: FrameHandler, on_lost: LostHandler) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_frame = on_frame
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._needed = 0  # bytes needed before the next frame is complete
        self._chunks: list[bytes] = []
        self._scheduled = False
        self._writable: asyncio.Future[None] | None = None
        self.closed = False
        #: Why we dropped the socket ourselves (reported as the cause of the loss).
        self.abort_reason: BaseException | None = None
        #: Loop time of the last bytes read and written (heartbeats and stall detection).
        self.last_read = self.last_write = self._loop.time()

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The socket (and TLS) is up."""
        # A stream transport, whichever loop made it: uvloop's are not asyncio.Transport
        # subclasses (an isinstance check here left busline unable to connect on uvloop).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Cut out and hand on every complete frame; keep the rest for later."""
        self.last_read = self._loop.time()
        if self._pending:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size < self._needed:
                return  # a large frame still arriving: do not join the pieces yet
            data = b"".join(self._pending)
            self._pending.clear()
        offset, end = 0, len(data)
        head_size = FRAME_HEAD.size
        on_frame = self._on_frame
        try:
            while end - offset >= head_size and not self.closed:
                kind, channel, size = FRAME_HEAD.unpack_from(data, offset)
                stop = offset + head_size + size
                if stop >= end:
                    break
                if data[stop] != FRAME_END:
                    raise ProtocolError(f"frame on channel {channel} not closed by 0xCE")
                on_frame(kind, channel, data[offset + head_size : stop])
                offset = stop + 1
        except Exception as exc:
            # A handler bug or a broken stream: nothing after this frame can be trusted.
            log.error("AMQP stream broken, closing the connection: %r", exc)
            self.abort(exc)
            return
        if offset < end:
            rest = data[offset:] if offset else data
            self._pending = [rest]
            self._pending_size = len(rest)
            self._needed = (
                head_size + FRAME_HEAD.unpack_from(rest)[2] + 1 if len(rest) >= head_size else 0
            )

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is closed (by either side)."""
        self.closed = True
        self._chunks.clear()
        self._wake_writers()
        self._on_lost(self.abort_reason or exc)

    def pause_writing(self) -> None:
        """The socket's buffer is full: publishers wait."""
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        """The socket's buffer drained."""
        self._wake_writers()

    # -- writing ----------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether writers should wait (the socket's buffer is full)."""
        return self._writable is not None

    async def wait_writable(self) -> None:
        """Until the socket's buffer has room again (or the socket closed)."""
        waiter = self._writable
        if waiter is not None:
            await asyncio.shield(waiter)

    def write(self, data: bytes) -> None:
        """Queue ``data``; it leaves with everything else written in this loop iteration."""
        if self.closed:
            return
        self._chunks.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def write_many(self, parts: list[bytes]) -> None:
        """:meth:`write` for several frames at once."""
        if self.closed:
            return
        self._chunks.extend(parts)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand everything queued to the socket now."""
        self._scheduled = False
        chunks = self._chunks
        transport = self.transport
        if not chunks or transport is None or self.closed:
            return
        self._chunks = []
        try:
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        except (RuntimeError, OSError) as exc:  # the socket died under us: the reader notices
            log.debug("write to a closing AMQP socket dropped: %r", exc)
        self.last_write = self._loop.time()

    def close(self) -> None:
        """Flush, then close the socket gracefully."""
        self.flush()
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self, reason: BaseException | None = None) -> None:
        """Drop the socket at once (stalled peer, broken stream)."""
        if self.abort_reason is None:
            self.abort_reason = reason
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _wake_writers(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
