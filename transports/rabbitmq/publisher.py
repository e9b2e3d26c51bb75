"""Publishing with publisher confirms: a publish returns only once the broker has the message.

All publishes share one confirm-mode channel per connection and are pipelined on it: each one
writes its frames and then waits for its own confirm, so a thousand concurrent sends cost a
thousand frames and roughly one round trip, not a thousand round trips.

If the channel or connection dies before the confirm arrives, the broker may or may not have the
message; the publish is then repeated on the next channel (a duplicate is acceptable, a loss is
not) until ``send_timeout`` runs out, when :class:`~busline.errors.PublishTimeoutError` is raised.
A publish never reports success without a broker ack.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiormq
from aiormq import Channel
from aiormq.abc import AbstractConnection, ChannelFrame

from busline.errors import PublishError, PublishTimeoutError, UnroutableError

from .acks import CHANNEL_GONE
from .connection import ConnectionManager, TransportClosedError
from .frames import publish_frames
from .topology import TopologyError

log = logging.getLogger("busline.rabbitmq")

Ensure = Callable[[], Awaitable[None]]

#: Channel-level failures (not the connection) tolerated per publish before giving up: such a
#: failure closes the channel, e.g. publishing to an exchange deleted behind our back.
MAX_CHANNEL_FAILURES = 3


class Publisher:
    """Owns the confirm channel and the retry loop around every publish."""

    def __init__(self, connections: ConnectionManager, send_timeout: float) -> None:
        self._connections = connections
        self._timeout = send_timeout
        self._channel: Channel | None = None
        self._lock = asyncio.Lock()
        # Per channel, held while a publisher waits for room in a full write queue (see
        # _enqueue_in_order); per channel so that one stuck on a dead channel blocks no other.
        self._write_locks: weakref.WeakKeyDictionary[Channel, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def attach(self, connection: AbstractConnection) -> None:
        """Open the confirm channel of a new connection."""
        self._channel = cast(
            Channel, await connection.channel(publisher_confirms=True, on_return_raises=True)
        )

    def detach(self) -> None:
        """The connection was lost: forget its channel."""
        self._channel = None

    async def close(self) -> None:
        """Close the channel (the connection closes separately)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:
                await asyncio.wait_for(channel.close(), 5)
            except Exception as exc:
                log.debug("closing the publish channel: %r", exc)

    async def publish(
        self,
        *,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: bytes,
        message_id: str,
        mandatory: bool,
        ensure: Ensure | None = None,
        on_unroutable: Callable[[], None] | None = None,
        on_not_found: Callable[[], None] | None = None,
    ) -> None:
        """Publish and wait for the broker's confirm.

        ``properties`` are the encoded content properties (see :mod:`.frames`), whose message id
        is ``message_id`` (the broker names a returned message by it). ``ensure`` declares what
        the publish needs (cached, so usually free); it runs again after a reconnect.
        ``on_unroutable`` runs when the broker returns the message, before
        :class:`~busline.errors.UnroutableError` is raised; ``on_not_found`` when the exchange
        turned out not to exist (deleted behind our back), before the publish is retried.

        Raises:
            UnroutableError: mandatory and no queue took it.
            PublishError: the broker refused it (nack) or a declaration was refused.
            PublishTimeoutError: no confirm within ``send_timeout`` (broker unreachable).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        channel_failures = 0
        attempt = 0
        while True:
            channel: Channel | None = None
            try:
                async with asyncio.timeout_at(deadline):
                    channel = self._channel
                    if channel is None or channel.is_closed:
                        channel = await self._open_channel(deadline)
                    if ensure is not None:
                        await ensure()
                    payload = publish_frames(
                        channel.number,
                        channel.max_content_size,
                        exchange,
                        routing_key,
                        mandatory,
                        body,
                        properties,
                    )
                    tag, confirmation = self._enqueue_now(channel, payload, message_id)
                    if confirmation is None:
                        tag, confirmation = await self._enqueue_in_order(
                            channel, payload, message_id
                        )
                    try:
                        await confirmation
                    finally:
                        if channel.message_id_delivery_tag.get(message_id) == tag:
                            del channel.message_id_delivery_tag[message_id]
                return
            except aiormq.PublishError as exc:
                if on_unroutable is not None:
                    on_unroutable()
                reply = exc.args[0] if exc.args else "NO_ROUTE"
                raise UnroutableError(
                    f"RabbitMQ returned the message sent to {_target(exchange, routing_key)}: "
                    f"no queue is bound to receive it ({reply})"
                ) from None
            except aiormq.DeliveryError:
                raise PublishError(
                    f"RabbitMQ refused (nacked) the message sent to "
                    f"{_target(exchange, routing_key)}"
                ) from None
            except TopologyError:
                raise
            except TimeoutError:
                raise PublishTimeoutError(
                    f"no confirm from RabbitMQ at {self._connections.config.masked} within "
                    f"{self._timeout:g}s for the message sent to {_target(exchange, routing_key)}"
                ) from None
            except TransportClosedError as exc:
                raise PublishError(str(exc)) from None
            except (TypeError, ValueError, struct.error) as exc:
                # The frame could not be encoded (e.g. a property over 255 bytes).
                raise PublishError(f"message cannot be encoded as AMQP: {exc}") from exc
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # aiormq fails pending confirms with CancelledError when it closes a channel.
                reason: BaseException = ConnectionError("channel closed")
            except CHANNEL_GONE as exc:
                reason = exc
            attempt += 1
            if channel is not None and self._channel is channel:
                self._channel = None
            if isinstance(reason, aiormq.AMQPChannelError):
                if isinstance(reason, aiormq.ChannelNotFoundEntity) and on_not_found is not None:
                    on_not_found()  # so that ensure() declares it again
                channel_failures += 1
                if channel_failures > MAX_CHANNEL_FAILURES:
                    raise PublishError(
                        f"RabbitMQ closed the channel publishing to "
                        f"{_target(exchange, routing_key)}: {reason}"
                    ) from reason
            log.debug(
                "publish to %s not confirmed (%r); retrying (attempt %d)",
                _target(exchange, routing_key),
                reason,
                attempt + 1,
            )
            # Short pause so a dying connection is not hammered before its loss is noticed.
            await asyncio.sleep(min(0.05 * attempt, 0.5))

    def _enqueue_now(
        self, channel: Channel, payload: bytes, message_id: str
    ) -> tuple[int, asyncio.Future[Any] | None]:
        """Queue the frames for the socket without waiting, if that keeps them in order.

        This is aiormq's ``basic_publish`` minus what a pipelined publisher does not need: the
        delivery tag the broker will confirm is the count of publishes on the channel, so tags
        must be handed out in exactly the order the frames are queued. Nothing awaits between
        the two here; when the write queue is full (or others already wait for it) the caller
        takes :meth:`_enqueue_in_order` instead.
        """
        lock = self._write_locks.get(channel)
        if (lock is not None and lock.locked()) or channel.write_queue.full():
            return 0, None
        if channel.is_closed:
            raise aiormq.ChannelInvalidStateError("publish channel closed")
        tag = channel.delivery_tag + 1
        confirmation = channel.create_future()
        channel.delivery_tag = tag
        channel.confirmations[tag] = confirmation
        channel.message_id_delivery_tag[message_id] = tag
        channel.write_queue.put_nowait(ChannelFrame(payload=payload, should_close=False))
        return tag, confirmation

    async def _enqueue_in_order(
        self, channel: Channel, payload: bytes, message_id: str
    ) -> tuple[int, asyncio.Future[Any]]:
        """Wait for room in the write queue, one publisher at a time, keeping tag order."""
        lock = self._write_locks.get(channel)
        if lock is None:
            lock = self._write_locks[channel] = asyncio.Lock()
        async with lock:
            if channel.is_closed:
                raise aiormq.ChannelInvalidStateError("publish channel closed")
            tag = channel.delivery_tag + 1
            confirmation = channel.create_future()
            channel.delivery_tag = tag
            channel.confirmations[tag] = confirmation
            channel.message_id_delivery_tag[message_id] = tag
            frame = ChannelFrame(payload=payload, should_close=False)
            if not channel.write_queue.full():
                channel.write_queue.put_nowait(frame)
                return tag, confirmation
            put = asyncio.ensure_future(channel.write_queue.put(frame))
            # A dead connection's write queue never drains: give up when the channel closes.
            closing = channel.closing
            try:
                await asyncio.wait({put, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()  # only this observer, not the channel
                queued = put.done() and not put.cancelled() and put.exception() is None
                if not queued:
                    # A put cancelled before it finished has not queued the frame: never sent,
                    # so give the tag back, or every later confirm would be off by one.
                    put.cancel()
                    channel.delivery_tag = tag - 1
                    channel.confirmations.pop(tag, None)
                    if channel.message_id_delivery_tag.get(message_id) == tag:
                        del channel.message_id_delivery_tag[message_id]
                    confirmation.cancel()
            if not queued:
                raise aiormq.ChannelInvalidStateError("publish channel closed")
            return tag, confirmation

    async def _open_channel(self, deadline: float) -> Channel:
        async with self._lock:
            while True:
                channel = self._channel
                if channel is not None and not channel.is_closed:
                    return channel
                connection = await self._connections.get(deadline)
                try:
                    channel = cast(
                        Channel,
                        await connection.channel(publisher_confirms=True, on_return_raises=True),
                    )
                except CHANNEL_GONE as exc:
                    log.debug("opening a publish channel failed: %r", exc)
                    await asyncio.sleep(0.05)
                    continue
                self._channel = channel
                return channel


def _target(exchange: str, routing_key: str) -> str:
    if exchange:
        return f"exchange {exchange!r}"
    return f"queue {routing_key!r}"
