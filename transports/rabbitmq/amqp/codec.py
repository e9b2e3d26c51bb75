"""Frames on the wire: pamqp's public codec, plus hand-written paths for the hot methods.

Every method is encoded and decoded by :mod:`pamqp.frame` and :mod:`pamqp.commands`, except the
few that flow once per message, where pamqp's generic, attribute-by-attribute walk is most of
the cost: ``Basic.Publish`` (encoded once per exchange and routing key and cached by the channel),
``Basic.Deliver`` (decoded here), and the acks in both directions (a fixed 13-byte layout).
tests/rabbitmq/amqp/test_codec.py checks these against pamqp byte for byte.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import frame as pamqp_frame
from pamqp.base import Frame
from pamqp.commands import INDEX_MAPPING, Basic

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
FRAME_END_BYTE = b"\xce"
#: Type, channel, size: the seven bytes in front of every frame's payload.
FRAME_HEAD = struct.Struct(">BHI")
#: Bytes a frame adds around its payload (head and end marker): a body frame carries
#: ``frame_max - FRAME_OVERHEAD`` bytes at most.
FRAME_OVERHEAD = 8

_METHOD_ID = struct.Struct(">I")
_CONTENT_HEAD = struct.Struct(">BHIHHQ")  # frame head, then class, weight, body size
_ACK = struct.Struct(">BHIIQB")  # frame head, method id, delivery tag, flags
_U8 = struct.Struct(">B")
_U64_BIT = struct.Struct(">QB")

#: ``class << 16 | method`` of the methods decoded or encoded by hand.
DELIVER = 60 << 16 | 60
ACK = 60 << 16 | 80
NACK = 60 << 16 | 120
REJECT = 60 << 16 | 90


def method_frame(method: Frame, channel: int) -> bytes:
    """One method frame, encoded by pamqp."""
    return pamqp_frame.marshal(method, channel)


def decode_method(payload: bytes) -> Frame:
    """A method frame's payload as a pamqp command (raises ``ValueError`` if it is unknown or
    malformed)."""
    (index,) = _METHOD_ID.unpack_from(payload)
    try:
        method: Frame = INDEX_MAPPING[index]()
    except KeyError:
        raise ValueError(f"unknown AMQP method 0x{index:08x}") from None
    try:
        method.unmarshal(payload[4:])
    except struct.error as exc:
        raise ValueError(f"malformed {method.name}: {exc}") from exc
    return method


def method_id(payload: bytes) -> int:
    """The ``class << 16 | method`` id of a method frame's payload."""
    return int(_METHOD_ID.unpack_from(payload)[0])


def decode_deliver(payload: bytes) -> tuple[str, int, bool, str, str]:
    """``Basic.Deliver``: consumer tag, delivery tag, redelivered, exchange, routing key."""
    offset = 4
    size = payload[offset]
    consumer_tag = payload[offset + 1 : offset + 1 + size].decode("utf-8", "replace")
    offset += 1 + size
    tag, bits = _U64_BIT.unpack_from(payload, offset)
    offset += 9
    size = payload[offset]
    exchange = payload[offset + 1 : offset + 1 + size].decode("utf-8", "replace")
    offset += 1 + size
    size = payload[offset]
    routing_key = payload[offset + 1 : offset + 1 + size].decode("utf-8", "replace")
    return consumer_tag, tag, bool(bits & 1), exchange, routing_key


def decode_ack(payload: bytes) -> tuple[int, bool, bool]:
    """``Basic.Ack`` or ``Basic.Nack``: delivery tag, multiple, requeue (always False on acks)."""
    tag, bits = _U64_BIT.unpack_from(payload, 4)
    return tag, bool(bits & 1), bool(bits & 2)


def ack_frame(channel: int, tag: int, multiple: bool) -> bytes:
    """``Basic.Ack``."""
    return _ACK.pack(FRAME_METHOD, channel, 13, ACK, tag, 1 if multiple else 0) + FRAME_END_BYTE


def nack_frame(channel: int, tag: int, multiple: bool, requeue: bool) -> bytes:
    """``Basic.Nack``."""
    bits = (1 if multiple else 0) | (2 if requeue else 0)
    return _ACK.pack(FRAME_METHOD, channel, 13, NACK, tag, bits) + FRAME_END_BYTE


def reject_frame(channel: int, tag: int, requeue: bool) -> bytes:
    """``Basic.Reject``."""
    return _ACK.pack(FRAME_METHOD, channel, 13, REJECT, tag, 1 if requeue else 0) + FRAME_END_BYTE


def publish_frame(channel: int, exchange: str, routing_key: str, mandatory: bool) -> bytes:
    """``Basic.Publish``, through pamqp (which validates the names); callers cache it."""
    method = Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
    return method_frame(method, channel)


def encode_properties(properties: Basic.Properties | bytes | None) -> bytes:
    """Property flags and values: ``properties.marshal()``, or bytes already encoded."""
    if properties is None:
        return b"\x00\x00"
    if isinstance(properties, bytes | bytearray):
        return bytes(properties)
    return properties.marshal()


def content_frames(
    channel: int, properties: bytes, body: bytes, frame_max: int, out: list[bytes]
) -> None:
    """Append the content header frame and the body frames (split by ``frame_max``) to
    ``out``."""
    size = len(body)
    out.append(
        _CONTENT_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), 60, 0, size)
        + properties
        + FRAME_END_BYTE
    )
    chunk = frame_max - FRAME_OVERHEAD
    if size <= chunk:
        if size:
            out.append(FRAME_HEAD.pack(FRAME_BODY, channel, size) + body + FRAME_END_BYTE)
        return
    view = memoryview(body)
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        out.append(FRAME_HEAD.pack(FRAME_BODY, channel, len(piece)) + piece + FRAME_END_BYTE)


def heartbeat_frame() -> bytes:
    """A heartbeat frame (channel 0, no payload)."""
    return FRAME_HEAD.pack(FRAME_HEARTBEAT, 0, 0) + FRAME_END_BYTE


def describe(method: Any) -> str:
    """``Queue.Declare`` for a pamqp command (or its class)."""
    return str(getattr(method, "name", type(method).__name__))
