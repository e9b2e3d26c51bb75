"""One AMQP connection: the socket, the handshake, channel 0, heartbeats and the close paths.

Frames arrive in :meth:`Connection._on_frame`, synchronously from the socket's
``data_received``; channel 0 is handled here, the others by their :class:`~.channel.Channel`.
However the connection ends (we close it, the broker closes it, the socket drops, the peer
stalls), :meth:`Connection._finish` runs once: every channel learns the reason, so everything
waiting on them (RPCs, confirms) fails at once with a :class:`ConnectionClosedError` that the
caller can retry on, and :attr:`Connection.closed` resolves with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from pamqp.base import Frame
from pamqp.commands import Connection as C

from .channel import Channel
from .codec import FRAME_HEARTBEAT, FRAME_METHOD, decode_method, heartbeat_frame, method_frame
from .errors import ConnectionClosedError, ProtocolError
from .handshake import Params, Tuned, client_properties, handshake, parse_url, tls_server_name
from .protocol import FrameProtocol

log = logging.getLogger("busline.amqp")


class Connection:
    """An open AMQP 0-9-1 connection (make one with :func:`connect`)."""

    def __init__(self, params: Params, stall_timeout: float | None) -> None:
        self.params = params
        self._loop = asyncio.get_running_loop()
        self._protocol = FrameProtocol(self._on_frame, self._on_lost)
        self._stall_timeout = stall_timeout
        self._handshake: asyncio.Queue[Frame | BaseException] | None = asyncio.Queue()
        self._channels: dict[int, Channel] = {}
        self._next_id = 1
        self._close_ok: asyncio.Future[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._unblocked: asyncio.Future[None] | None = None
        self.tuned = Tuned(0, 131072, 0, {})
        #: Resolves once closed, with the reason (``None`` for a close we asked for).
        self.closed: asyncio.Future[BaseException | None] = self._loop.create_future()
        #: Why the broker blocked publishers (``None`` while not blocked).
        self.blocked_reason: str | None = None

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<amqp.Connection {self.params!r} {state}>"

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closed or closing."""
        return self.closed.done() or self._close_ok is not None

    @property
    def frame_max(self) -> int:
        """The negotiated largest frame."""
        return self.tuned.frame_max

    @property
    def protocol(self) -> FrameProtocol:
        """The socket (channels write through it)."""
        return self._protocol

    async def _open(self, context: ssl.SSLContext | None, properties: dict[str, Any]) -> None:
        params = self.params
        await self._loop.create_connection(
            lambda: self._protocol,
            params.host,
            params.port,
            ssl=context,
            server_hostname=tls_server_name(params, context),
        )
        self.tuned = await handshake(params, self._next_handshake_frame, self._write, properties)
        self._handshake = None
        beat = self.tuned.heartbeat
        if beat > 0:
            stall = self._stall_timeout or 2.0 * beat
            self._heartbeat = asyncio.create_task(self._beat(beat, stall), name="amqp:heartbeat")

    async def _next_handshake_frame(self) -> Frame:
        queue = self._handshake
        assert queue is not None
        item = await queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _write(self, data: bytes) -> None:
        self._protocol.write(data)

    # -- channels ---------------------------------------------------------------------------

    async def channel(self, *, confirms: bool = False) -> Channel:
        """Open a channel; ``confirms``: in publisher-confirm mode (``Confirm.Select``)."""
        self._check_open()
        channel_id = self._free_id()
        channel = Channel(self, channel_id)
        self._channels[channel_id] = channel
        try:
            await channel.open(confirms)
        except BaseException:
            self.forget(channel)
            raise
        return channel

    def _free_id(self) -> int:
        limit = self.tuned.channel_max or 65535
        for _ in range(limit):
            channel_id = self._next_id
            self._next_id = channel_id % limit + 1
            if channel_id not in self._channels:
                return channel_id
        raise ConnectionClosedError(f"no free channel: all {limit} are in use")

    def forget(self, channel: Channel) -> None:
        """``channel`` is fully closed: its number may be used again."""
        if self._channels.get(channel.id) is channel:
            del self._channels[channel.id]

    # -- blocked publishers -----------------------------------------------------------------

    @property
    def blocked(self) -> bool:
        """Whether the broker asked publishers to wait (``Connection.Blocked``)."""
        return self._unblocked is not None

    async def wait_unblocked(self) -> None:
        """Until the broker lets publishers go on (or the connection closes)."""
        waiter = self._unblocked
        if waiter is not None:
            await asyncio.shield(waiter)
        self._check_open()

    # -- frames in --------------------------------------------------------------------------

    def _on_frame(self, kind: int, channel_id: int, payload: bytes) -> None:
        if channel_id:
            channel = self._channels.get(channel_id)
            if channel is not None:
                channel.on_frame(kind, payload)
            return  # e.g. deliveries still arriving for a channel we have closed
        if kind == FRAME_HEARTBEAT:
            return  # data_received already noted that the peer is alive
        if kind != FRAME_METHOD:
            raise ProtocolError(f"frame of type {kind} on channel 0")
        method = decode_method(payload)
        if self._handshake is not None:
            self._handshake.put_nowait(method)
        elif isinstance(method, C.Close):
            self._write(method_frame(C.CloseOk(), 0))
            code, text = int(method.reply_code or 0), str(method.reply_text or "")
            self._finish(ConnectionClosedError(f"closed by the broker: {code} {text}", code, text))
            self._protocol.close()
        elif isinstance(method, C.CloseOk):
            if self._close_ok is not None and not self._close_ok.done():
                self._close_ok.set_result(None)
        elif isinstance(method, C.Blocked):
            self.blocked_reason = str(method.reason or "")
            log.warning("RabbitMQ blocked publishing: %s", self.blocked_reason)
            if self._unblocked is None:
                self._unblocked = self._loop.create_future()
        elif isinstance(method, C.Unblocked):
            log.warning("RabbitMQ unblocked publishing")
            self._release_blocked()
        else:
            raise ProtocolError(f"unexpected {method.name} on channel 0")

    def _on_lost(self, exc: BaseException | None) -> None:
        if self._handshake is not None:
            self._handshake.put_nowait(ConnectionClosedError(_lost_text(exc)))
        self._finish(
            exc
            if isinstance(exc, ConnectionClosedError)
            else ConnectionClosedError(_lost_text(exc))
        )

    # -- closing ----------------------------------------------------------------------------

    async def close(self, grace: float = 5.0) -> None:
        """Close cleanly: ``Connection.Close``, wait for ``CloseOk`` (at most ``grace`` seconds)."""
        if self.is_closed:
            if not self.closed.done():
                await asyncio.wait({self.closed}, timeout=grace)
            return
        self._close_ok = self._loop.create_future()
        self._write(
            method_frame(
                C.Close(reply_code=200, reply_text="Normal shutdown", class_id=0, method_id=0), 0
            )
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._close_ok), grace)
        self._finish(None)
        self._protocol.close()

    def abort(self, reason: ConnectionClosedError) -> None:
        """Drop the connection at once (e.g. the peer stalled), failing everything with
        ``reason``."""
        self._finish(reason)
        self._protocol.abort(reason)

    def _finish(self, reason: BaseException | None) -> None:
        if self.closed.done():
            return
        error = reason or ConnectionClosedError("connection closed")
        for channel in list(self._channels.values()):
            channel.connection_lost(error)
        self._channels.clear()
        self._release_blocked()
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
        self.closed.set_result(reason)

    def _release_blocked(self) -> None:
        waiter, self._unblocked = self._unblocked, None
        self.blocked_reason = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_open(self) -> None:
        if self.closed.done():
            reason = self.closed.result()
            if isinstance(reason, ConnectionClosedError):
                raise reason
            raise ConnectionClosedError("connection closed")
        if self._close_ok is not None:
            raise ConnectionClosedError("connection closing")

    async def _beat(self, interval: int, stall: float) -> None:
        """Send heartbeats when idle; drop the connection when the peer has gone quiet."""
        protocol = self._protocol
        # Fine enough that a stall is noticed within an eighth of the limit past it.
        tick = max(0.05, min(interval / 2, stall / 8))
        frame = heartbeat_frame()
        while not self.closed.done():
            await asyncio.sleep(tick)
            now = self._loop.time()
            silent = now - protocol.last_read
            if silent > stall:
                log.warning(
                    "no frames from RabbitMQ at %s:%d for %.1fs (heartbeat %ds): "
                    "connection stalled, dropping it",
                    self.params.host,
                    self.params.port,
                    silent,
                    interval,
                )
                self.abort(
                    ConnectionClosedError(
                        f"connection stalled: nothing from the broker for {silent:.1f}s "
                        f"(heartbeat {interval}s, limit {stall:g}s)"
                    )
                )
                return
            if now - protocol.last_write >= interval / 2:
                protocol.write(frame)


def _lost_text(exc: BaseException | None) -> str:
    if exc is None:
        return "connection closed by the peer"
    return f"connection lost: {type(exc).__name__}: {exc}"


async def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    properties: dict[str, Any] | None = None,
    heartbeat: int | None = None,
    stall_timeout: float | None = None,
    connect_timeout: float = 10.0,
) -> Connection:
    """Open a connection to the broker at ``url`` (``amqps://`` uses ``ssl_context``, or a
    default verifying one). ``stall_timeout``: drop the connection after this long without a
    frame from the broker (default twice the heartbeat).

    Raises :class:`~.errors.BrokerRefusedError` at once for refused credentials or vhost, and
    :class:`ConnectionError` (or :class:`TimeoutError`) when the broker cannot be reached.
    """
    params = parse_url(url, heartbeat)
    if params.tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    connection = Connection(params, stall_timeout)
    try:
        async with asyncio.timeout(connect_timeout):
            await connection._open(
                ssl_context if params.tls else None, client_properties(properties)
            )
    except BaseException as exc:
        connection.abort(ConnectionClosedError(f"connecting failed: {exc!r}"))
        raise
    return connection
