"""busline's own AMQP 0-9-1 client, on pamqp's public frame codec.

Why it exists (instead of aiormq): publishing and consuming without a lock, a task or a generic
encoder per message, and a frame reader that survives a message whose properties do not decode.
See docs/amqp-client.md.

Usage::

    connection = await connect("amqp://guest:guest@localhost/")
    channel = await connection.channel(confirms=True)
    await channel.queue_declare("q", durable=True)
    await channel.publish(b"hi", "", "q", properties, mandatory=True)  # returns once confirmed
"""

from .channel import Channel, DeliveryCallback
from .connection import Connection, connect
from .errors import (
    AccessRefusedError,
    AMQPError,
    AuthenticationError,
    BrokerRefusedError,
    ChannelClosedError,
    ConnectionClosedError,
    NackedError,
    NotFoundError,
    PreconditionFailedError,
    ProtocolError,
    PublishError,
    ResourceLockedError,
    UnroutableError,
    VhostNotAllowedError,
)
from .message import Delivery

__all__ = [
    "AMQPError",
    "AccessRefusedError",
    "AuthenticationError",
    "BrokerRefusedError",
    "Channel",
    "ChannelClosedError",
    "Connection",
    "ConnectionClosedError",
    "Delivery",
    "DeliveryCallback",
    "NackedError",
    "NotFoundError",
    "PreconditionFailedError",
    "ProtocolError",
    "PublishError",
    "ResourceLockedError",
    "UnroutableError",
    "VhostNotAllowedError",
    "connect",
]
