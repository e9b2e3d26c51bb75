"""The hand-written encoders and decoders agree with pamqp byte for byte; content is split by
frame_max; a content header that pamqp cannot decode is decoded leniently."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from busline.transports.rabbitmq.amqp import codec
from busline.transports.rabbitmq.amqp.headers import decode_header
from pamqp import frame as pamqp_frame
from pamqp.commands import Basic
from pamqp.header import ContentHeader


def _payload(frame: bytes) -> bytes:
    """A frame's payload (what the connection hands a channel)."""
    return frame[7:-1]


@pytest.mark.parametrize("multiple", [False, True])
def test_acks_match_pamqp(multiple):
    tag = 2**40 + 7
    assert codec.ack_frame(3, tag, multiple) == pamqp_frame.marshal(
        Basic.Ack(delivery_tag=tag, multiple=multiple), 3
    )
    for requeue in (False, True):
        assert codec.nack_frame(3, tag, multiple, requeue) == pamqp_frame.marshal(
            Basic.Nack(delivery_tag=tag, multiple=multiple, requeue=requeue), 3
        )
        assert codec.reject_frame(3, tag, requeue) == pamqp_frame.marshal(
            Basic.Reject(delivery_tag=tag, requeue=requeue), 3
        )
    assert codec.decode_ack(_payload(codec.ack_frame(3, tag, multiple))) == (tag, multiple, False)


def test_deliver_decodes_like_pamqp():
    method = Basic.Deliver(
        consumer_tag="ctag-ü", delivery_tag=99, redelivered=True, exchange="ex", routing_key="rk"
    )
    payload = _payload(pamqp_frame.marshal(method, 1))
    assert codec.method_id(payload) == codec.DELIVER
    assert codec.decode_deliver(payload) == ("ctag-ü", 99, True, "ex", "rk")
    decoded = codec.decode_method(payload)
    assert isinstance(decoded, Basic.Deliver) and decoded.delivery_tag == 99


def test_publish_content_is_split_by_frame_max():
    body = bytes(range(256)) * 40  # 10,240 bytes
    properties = Basic.Properties(message_id="m", delivery_mode=2)
    frames: list[bytes] = []
    codec.content_frames(5, codec.encode_properties(properties), body, 4096, frames)
    assert len(frames) == 1 + 3  # header, then 4088 + 4088 + 2064 bytes of body
    _, channel, header = pamqp_frame.unmarshal(frames[0])
    assert channel == 5 and isinstance(header, ContentHeader)
    assert header.body_size == len(body) and header.properties == properties
    parts = [pamqp_frame.unmarshal(f)[2].value for f in frames[1:]]
    assert all(len(f) <= 4096 for f in frames) and b"".join(parts) == body


def test_empty_body_has_no_body_frame():
    frames: list[bytes] = []
    codec.content_frames(1, codec.encode_properties(None), b"", 4096, frames)
    assert len(frames) == 1


def _header_payload(properties: bytes, body_size: int = 3) -> bytes:
    return struct.pack(">HHQ", 60, 0, body_size) + properties


def test_a_valid_header_decodes_strictly():
    properties = Basic.Properties(
        message_id="m1",
        message_type="orders.Placed",
        headers={"a": 1, "b": "x"},
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        delivery_mode=2,
    )
    header = decode_header(_header_payload(properties.marshal()))
    assert header.error is None and header.raw is None
    assert header.properties == properties and header.body_size == 3


def bad_type_properties() -> bytes:
    """message_id "m1", type b"bad\\xff", app_id "app": the type is not UTF-8."""
    flags = 0x0080 | 0x0020 | 0x0008
    return struct.pack(">H", flags) + b"\x02m1" + b"\x04bad\xff" + b"\x03app"


def test_a_type_that_is_not_utf8_is_decoded_leniently():
    payload = _header_payload(bad_type_properties())
    with pytest.raises(ValueError):  # what kills aiormq's reader
        ContentHeader().unmarshal(payload)
    header = decode_header(payload)
    assert header.error is not None and "message_type is not UTF-8" in header.error
    assert header.raw == payload and header.body_size == 3
    props = header.properties
    assert (props.message_id, props.message_type, props.app_id) == ("m1", "bad\ufffd", "app")


def test_a_table_that_does_not_decode_is_left_out():
    table = b"\x02k\xff" + b"I" + struct.pack(">i", 1)  # key not UTF-8
    flags = 0x2000 | 0x0080
    properties = struct.pack(">H", flags) + struct.pack(">I", len(table)) + table + b"\x02m2"
    header = decode_header(_header_payload(properties))
    assert header.error is not None and "headers left out" in header.error
    assert header.properties.headers is None and header.properties.message_id == "m2"
