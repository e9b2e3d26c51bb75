"""Publisher-confirm bookkeeping of one channel: delivery tags, acks, nacks and returns.

In confirm mode the broker numbers the publishes of a channel 1, 2, 3, ... in the order it
receives them, and confirms them with ``Basic.Ack``/``Basic.Nack``, ``multiple`` covering every
lower tag. Tags are handed out here when the frames are written, so they match the broker's.

A mandatory message no queue takes comes back as ``Basic.Return`` (with its properties), and
RabbitMQ sends the return before the ack of that publish. The return does not carry the delivery
tag, so it is matched to the oldest unconfirmed mandatory publish with the same message id,
exchange and routing key (or, without a message id, the same exchange and routing key); when its
ack arrives, that publish fails with :class:`~.errors.UnroutableError`.
"""

from __future__ import annotations

import asyncio

from .errors import NackedError, UnroutableError

_Target = tuple[str, str, str | None]  # exchange, routing key, message id


class Confirms:
    """The unconfirmed publishes of a channel, by delivery tag."""

    __slots__ = ("_low", "_mandatory", "_next", "_pending", "_returned")

    def __init__(self) -> None:
        self._next = 1
        self._low = 1  # every tag below this was settled
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._mandatory: dict[int, _Target] = {}
        self._returned: dict[int, tuple[int, str]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self,
        future: asyncio.Future[None],
        mandatory: bool,
        exchange: str,
        routing_key: str,
        message_id: str | None,
    ) -> int:
        """Register the publish being written now; return its delivery tag."""
        tag = self._next
        self._next = tag + 1
        self._pending[tag] = future
        if mandatory:
            self._mandatory[tag] = (exchange, routing_key, message_id)
        return tag

    def settle(self, tag: int, multiple: bool, nacked: bool) -> None:
        """``Basic.Ack`` (``nacked`` False) or ``Basic.Nack`` for ``tag`` (and below)."""
        if multiple:
            for each in range(self._low, tag + 1):
                self._settle(each, nacked)
            self._low = max(self._low, tag + 1)
        else:
            self._settle(tag, nacked)

    def _settle(self, tag: int, nacked: bool) -> None:
        future = self._pending.pop(tag, None)
        if self._mandatory:
            self._mandatory.pop(tag, None)
        returned = self._returned.pop(tag, None) if self._returned else None
        if future is None or future.done():
            return  # settled already, or its publisher gave up waiting
        if returned is not None:
            code, text = returned
            future.set_exception(
                UnroutableError(f"returned by the broker: {code} {text}", code, text)
            )
        elif nacked:
            future.set_exception(NackedError("the broker refused the message (Basic.Nack)"))
        else:
            future.set_result(None)

    def returned(
        self,
        exchange: str,
        routing_key: str,
        message_id: str | None,
        reply_code: int,
        reply_text: str,
    ) -> bool:
        """A ``Basic.Return``: mark the publish it belongs to (``False`` if none matches)."""
        fallback = None
        for tag, (ex, key, mid) in self._mandatory.items():
            if tag in self._returned or ex != exchange or key != routing_key:
                continue
            if message_id is not None and mid == message_id:
                self._returned[tag] = (reply_code, reply_text)
                return True
            if fallback is None:
                fallback = tag
        if fallback is None:
            return False
        self._returned[fallback] = (reply_code, reply_text)
        return True

    def fail_all(self, error: BaseException) -> None:
        """The channel is gone: every unconfirmed publish fails with ``error`` (whether the
        broker got it is unknown, so the caller retries)."""
        pending, self._pending = self._pending, {}
        self._mandatory.clear()
        self._returned.clear()
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
