"""A channel: its synchronous methods one at a time, its content frames assembled, its close.

Frames reach :meth:`Channel.on_frame` in order, synchronously from the socket. A delivery is
assembled from its three (or more) frames and handed to the consumer's callback right there:
no task per delivery, and deliveries reach the application in the broker's order.

Synchronous methods (declare, bind, qos, consume, ...) go one at a time per channel, under a
lock, because their replies carry nothing to match them by but their order. An RPC abandoned
while waiting (its caller cancelled or timed out) leaves the channel out of step with the
broker, so the channel is closed rather than reused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pamqp.base import Frame
from pamqp.commands import INDEX_MAPPING, Basic, Confirm
from pamqp.commands import Channel as Ch

from . import codec
from .confirms import Confirms
from .errors import ChannelClosedError, ConnectionClosedError, ProtocolError, channel_error
from .headers import decode_header
from .message import Delivery
from .operations import Operations
from .owner import Owner
from .publishing import Publishing

log = logging.getLogger("busline.amqp")

DeliveryCallback = Callable[[Delivery], None]
_DELIVER, _GET, _RETURN = 0, 1, 2


class Channel(Operations, Publishing):
    """One AMQP channel of a :class:`~.connection.Connection`."""

    def __init__(self, connection: Owner, channel_id: int) -> None:
        self.connection = connection
        self.id = channel_id
        self._protocol = connection.protocol
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._rpc: asyncio.Future[Any] | None = None
        self._expect: tuple[str, ...] = ()
        self._close_ok: asyncio.Future[None] | None = None
        self._flow: asyncio.Future[None] | None = None
        self._frames: dict[tuple[str, str, bool], bytes] = {}
        self._incoming: Delivery | None = None
        self._incoming_kind = _DELIVER
        self._remaining = 0
        self._body: list[bytes] = []
        self.confirms: Confirms | None = None
        self.consumers: dict[str, DeliveryCallback] = {}
        #: Called with the consumer tag when the broker cancels a consumer (queue deleted).
        self.on_cancel: list[Callable[[str], None]] = []
        #: Resolves once closed, with the reason (``None`` for a close we asked for).
        self.closed: asyncio.Future[BaseException | None] = self._loop.create_future()

    def __repr__(self) -> str:
        return f"<amqp.Channel {self.id} {'closed' if self.is_closed else 'open'}>"

    @property
    def is_closed(self) -> bool:
        """Whether the channel is closed or closing."""
        return self.closed.done()

    @property
    def _frame_max(self) -> int:
        return self.connection.frame_max

    def _blocked(self) -> bool:
        return self.connection.blocked

    async def _wait_unblocked(self) -> None:
        await self.connection.wait_unblocked()

    def error(self) -> BaseException:
        """What an operation on this closed channel raises: the reason it closed."""
        reason = self.closed.result() if self.closed.done() else None
        if isinstance(reason, ChannelClosedError | ConnectionClosedError):
            return reason
        return ChannelClosedError("channel closed")

    async def open(self, confirms: bool) -> None:
        """``Channel.Open``, then ``Confirm.Select`` if ``confirms``."""
        await self.rpc(Ch.Open())
        if confirms:
            await self.rpc(Confirm.Select())
            self.confirms = Confirms()

    # -- RPC --------------------------------------------------------------------------------

    async def rpc(self, method: Frame) -> Any:
        """Send a synchronous method and wait for its reply (one at a time per channel)."""
        async with self._lock:
            if self.closed.done():
                raise self.error()
            future = self._rpc = self._loop.create_future()
            self._expect = tuple(method.valid_responses)
            self._protocol.write(codec.method_frame(method, self.id))
            try:
                return await future
            except asyncio.CancelledError:
                if not future.done() or future.cancelled():
                    self._abandon(f"{method.name} abandoned while waiting for its reply")
                raise
            finally:
                self._rpc = None

    def _reply(self, value: Any) -> None:
        future = self._rpc
        if future is not None and not future.done():
            future.set_result(value)

    def _abandon(self, why: str) -> None:
        if not self.closed.done():
            self._begin_close(ChannelClosedError(f"channel closed: {why}"))

    # -- frames in --------------------------------------------------------------------------

    def on_frame(self, kind: int, payload: bytes) -> None:
        """Handle one frame for this channel (called by the connection, in order)."""
        if kind == codec.FRAME_METHOD:
            index = codec.method_id(payload)
            if self.closed.done():
                if index in (_CLOSE, _CLOSE_OK):
                    self._on_method(codec.decode_method(payload))
                return  # deliveries still arriving after our Channel.Close: dropped
            if index == codec.DELIVER:
                tag, delivery_tag, redelivered, exchange, key = codec.decode_deliver(payload)
                self._begin(
                    Delivery(
                        self, delivery_tag, exchange, key, consumer_tag=tag, redelivered=redelivered
                    ),
                    _DELIVER,
                )
            elif (index == codec.ACK or index == codec.NACK) and self.confirms is not None:
                acked, multiple, _ = codec.decode_ack(payload)
                self.confirms.settle(acked, multiple, index == codec.NACK)
            else:
                self._on_method(codec.decode_method(payload))
        elif self.closed.done():
            return
        elif kind == codec.FRAME_HEADER:
            self._on_header(payload)
        elif kind == codec.FRAME_BODY:
            self._body.append(payload)
            self._remaining -= len(payload)
            if self._remaining <= 0:
                self._complete()
        else:
            raise ProtocolError(f"frame of type {kind} on channel {self.id}")

    def _begin(self, message: Delivery, kind: int) -> None:
        self._incoming, self._incoming_kind = message, kind

    def _on_header(self, payload: bytes) -> None:
        message = self._incoming
        if message is None:
            raise ProtocolError(f"content header without a method on channel {self.id}")
        header = decode_header(payload)
        message.properties = header.properties
        if header.error is not None:
            message.header_error, message.raw_header = header.error, header.raw
            log.warning("channel %d: delivery %d: %s", self.id, message.delivery_tag, header.error)
        self._remaining = header.body_size
        self._body = []
        if header.body_size == 0:
            self._complete()

    def _complete(self) -> None:
        message, self._incoming = self._incoming, None
        if message is None:
            raise ProtocolError(f"content body without a method on channel {self.id}")
        body = self._body
        message.body = body[0] if len(body) == 1 else b"".join(body)
        self._body = []
        kind = self._incoming_kind
        if kind == _DELIVER:
            callback = self.consumers.get(message.consumer_tag)
            if callback is None:
                log.warning(
                    "channel %d: delivery for unknown consumer %r", self.id, message.consumer_tag
                )
                return
            try:
                callback(message)
            except Exception:  # the application's bug must not break the stream
                log.exception("channel %d: consumer callback failed", self.id)
        elif kind == _GET:
            self._reply(message)
        elif self.confirms is None or not self.confirms.returned(
            message.exchange,
            message.routing_key,
            message.properties.message_id,
            message.reply_code,
            message.reply_text,
        ):
            log.warning(
                "channel %d: returned message matches no publish: %s %s",
                self.id,
                message.reply_code,
                message.reply_text,
            )

    def _on_method(self, method: Frame) -> None:
        if isinstance(method, Basic.Return):
            self._begin(
                Delivery(
                    self,
                    0,
                    method.exchange or "",
                    method.routing_key or "",
                    reply_code=int(method.reply_code or 0),
                    reply_text=str(method.reply_text or ""),
                ),
                _RETURN,
            )
        elif isinstance(method, Basic.GetOk):
            self._begin(
                Delivery(
                    self,
                    int(method.delivery_tag or 0),
                    method.exchange or "",
                    method.routing_key or "",
                    redelivered=bool(method.redelivered),
                    message_count=int(method.message_count or 0),
                ),
                _GET,
            )
        elif isinstance(method, Ch.Close):
            self._protocol.write(codec.method_frame(Ch.CloseOk(), self.id))
            failed = INDEX_MAPPING.get((method.class_id or 0) << 16 | (method.method_id or 0))
            error = channel_error(
                int(method.reply_code or 0),
                str(method.reply_text or ""),
                codec.describe(failed) if failed else "",
            )
            self._finish(error)
            if self._close_ok is not None and not self._close_ok.done():
                self._close_ok.set_result(None)  # both sides closed at once: ours is done too
            self.connection.forget(self)
        elif isinstance(method, Ch.CloseOk):
            if self._close_ok is not None and not self._close_ok.done():
                self._close_ok.set_result(None)
            self.connection.forget(self)
        elif isinstance(method, Ch.Flow):
            self._protocol.write(codec.method_frame(Ch.FlowOk(active=method.active), self.id))
            self._set_flow(bool(method.active))
        elif isinstance(method, Basic.Cancel):
            self._cancelled(str(method.consumer_tag), bool(method.nowait))
        elif self._rpc is not None and method.name in self._expect:
            self._reply(method)
        else:
            log.warning("channel %d: unexpected %s ignored", self.id, method.name)

    def _cancelled(self, tag: str, nowait: bool) -> None:
        self.consumers.pop(tag, None)
        if not nowait:
            self._protocol.write(codec.method_frame(Basic.CancelOk(consumer_tag=tag), self.id))
        log.warning("channel %d: the broker cancelled consumer %r", self.id, tag)
        for callback in list(self.on_cancel):
            try:
                callback(tag)
            except Exception:
                log.exception("channel %d: cancel callback failed", self.id)

    def _set_flow(self, active: bool) -> None:
        if not active and self._flow is None:
            log.warning("channel %d: the broker paused publishing (Channel.Flow)", self.id)
            self._flow = self._loop.create_future()
        elif active and self._flow is not None:
            waiter, self._flow = self._flow, None
            waiter.set_result(None)

    # -- closing ----------------------------------------------------------------------------

    async def close(self, grace: float = 5.0) -> None:
        """``Channel.Close`` and wait for ``CloseOk`` (unacked deliveries go back to their
        queues); a no-op if already closed."""
        if not self.closed.done():
            self._begin_close(None)
        waiter = self._close_ok
        if waiter is not None and not waiter.done():
            try:
                await asyncio.wait_for(asyncio.shield(waiter), grace)
            except TimeoutError:
                log.debug("channel %d: no CloseOk within %gs", self.id, grace)
                self.connection.forget(self)

    def _begin_close(self, reason: BaseException | None) -> None:
        self._close_ok = self._loop.create_future()
        self._protocol.write(
            codec.method_frame(
                Ch.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), self.id
            )
        )
        self._finish(reason)

    def connection_lost(self, reason: BaseException) -> None:
        """The connection is gone: so is this channel."""
        if self._close_ok is not None and not self._close_ok.done():
            self._close_ok.set_result(None)
        self._finish(reason)

    def _finish(self, reason: BaseException | None) -> None:
        if self.closed.done():
            return
        self.closed.set_result(reason)
        error = self.error()
        if self.confirms is not None:
            self.confirms.fail_all(error)
        if self._rpc is not None and not self._rpc.done():
            self._rpc.set_exception(error)
        if self._flow is not None:
            self._set_flow(True)
        self.consumers.clear()
        self._incoming = None


_CLOSE = 20 << 16 | 40
_CLOSE_OK = 20 << 16 | 41
