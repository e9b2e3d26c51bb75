"""A message received from the broker: by a consumer (``Basic.Deliver``), by ``Basic.Get``, or
handed back by it (``Basic.Return``)."""

from __future__ import annotations

from typing import Protocol

from pamqp.commands import Basic


class Settler(Protocol):
    """Where a delivery is settled: the channel it came from."""

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """``Basic.Ack``."""

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        """``Basic.Nack``."""


class Delivery:
    """The method's fields, the properties and the body of one message.

    ``header_error`` is set when the content header did not decode strictly (see
    :mod:`.headers`): ``properties`` then holds what could be read, ``raw_header`` the frame.
    """

    __slots__ = (
        "body",
        "channel",
        "consumer_tag",
        "delivery_tag",
        "exchange",
        "header_error",
        "message_count",
        "properties",
        "raw_header",
        "redelivered",
        "reply_code",
        "reply_text",
        "routing_key",
    )

    def __init__(
        self,
        channel: Settler,
        delivery_tag: int,
        exchange: str,
        routing_key: str,
        *,
        consumer_tag: str = "",
        redelivered: bool = False,
        message_count: int = 0,
        reply_code: int = 0,
        reply_text: str = "",
    ) -> None:
        self.channel = channel
        self.consumer_tag = consumer_tag
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key
        #: ``Basic.GetOk``: messages left in the queue.
        self.message_count = message_count
        #: ``Basic.Return``: why the broker handed the message back.
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.properties: Basic.Properties = _EMPTY
        self.body = b""
        self.header_error: str | None = None
        self.raw_header: bytes | None = None

    def __repr__(self) -> str:
        return (
            f"<Delivery tag={self.delivery_tag} {self.exchange!r}/{self.routing_key!r} "
            f"{len(self.body)} bytes{' (bad header)' if self.header_error else ''}>"
        )

    def ack(self) -> None:
        """Acknowledge this message (on the channel it came from)."""
        self.channel.ack(self.delivery_tag)

    def nack(self, requeue: bool = True) -> None:
        """Give this message back (``requeue``) or drop/dead-letter it."""
        self.channel.nack(self.delivery_tag, requeue=requeue)


_EMPTY = Basic.Properties()
