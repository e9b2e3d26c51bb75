"""What can go wrong, as exceptions a caller can act on.

Three families, by what the caller should do:

- :class:`ConnectionClosedError` (a :class:`ConnectionError`): the connection is gone (socket
  reset, broker shut down, heartbeat stall). Anything in flight may or may not have reached the
  broker; reconnect and retry.
- :class:`BrokerRefusedError`: the broker refused the handshake (credentials, vhost). Retrying
  the same thing will not help, so it is raised at once, with the broker's reason.
- :class:`ChannelClosedError`: the broker closed one channel (a missing queue, a declaration
  with other arguments). The connection and its other channels carry on.
"""

from __future__ import annotations


class AMQPError(Exception):
    """Base of every error this client raises."""


class ProtocolError(AMQPError):
    """The peer sent something AMQP 0-9-1 does not allow here (the connection is closed)."""


class ConnectionClosedError(AMQPError, ConnectionError):
    """The connection is closed; ``reply_code``/``reply_text`` are the broker's, if it said."""

    def __init__(self, reason: str, reply_code: int = 0, reply_text: str = "") -> None:
        super().__init__(reason)
        self.reply_code = reply_code
        self.reply_text = reply_text


class BrokerRefusedError(AMQPError):
    """The broker refused to open the connection; permanent, not retried."""

    def __init__(self, reason: str, reply_code: int = 0, reply_text: str = "") -> None:
        super().__init__(reason)
        self.reply_code = reply_code
        self.reply_text = reply_text


class AuthenticationError(BrokerRefusedError):
    """Wrong user name or password (or a mechanism the broker does not offer)."""


class VhostNotAllowedError(BrokerRefusedError):
    """The vhost does not exist, or the user may not use it."""


class ChannelClosedError(AMQPError):
    """The channel is closed: by the broker (``reply_code`` > 0, with its reason), or by us."""

    def __init__(
        self, reason: str, reply_code: int = 0, reply_text: str = "", method: str = ""
    ) -> None:
        super().__init__(reason)
        self.reply_code = reply_code
        self.reply_text = reply_text
        #: The method the broker objected to, e.g. ``Queue.Declare`` (empty if unknown).
        self.method = method


class AccessRefusedError(ChannelClosedError):
    """403: the user may not do this with this resource."""


class NotFoundError(ChannelClosedError):
    """404: the queue or exchange does not exist."""


class ResourceLockedError(ChannelClosedError):
    """405: an exclusive queue of another connection."""


class PreconditionFailedError(ChannelClosedError):
    """406: e.g. a queue exists with other arguments, or an unknown delivery tag was acked."""


_BY_CODE: dict[int, type[ChannelClosedError]] = {
    403: AccessRefusedError,
    404: NotFoundError,
    405: ResourceLockedError,
    406: PreconditionFailedError,
}


def channel_error(reply_code: int, reply_text: str, method: str = "") -> ChannelClosedError:
    """The exception for a broker's ``Channel.Close``: a subclass for the common codes."""
    kind = _BY_CODE.get(reply_code, ChannelClosedError)
    where = f" ({method})" if method else ""
    return kind(
        f"channel closed by the broker: {reply_code} {reply_text}{where}",
        reply_code,
        reply_text,
        method,
    )


class PublishError(AMQPError):
    """A confirmed publish did not succeed."""


class NackedError(PublishError):
    """The broker refused the message (``Basic.Nack``): e.g. a full queue with reject-publish."""


class UnroutableError(PublishError):
    """A mandatory message no queue took: the broker returned it (``Basic.Return``)."""

    def __init__(self, reason: str, reply_code: int = 312, reply_text: str = "NO_ROUTE") -> None:
        super().__init__(reason)
        self.reply_code = reply_code
        self.reply_text = reply_text
