"""The RabbitMQ transport's pure parts, without a broker: ack batching, the wire mapping,
delay levels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pamqp.frame
import pytest
from busline.transports.rabbitmq.acks import AckTracker
from busline.transports.rabbitmq.delays import delay_level, delay_name, delay_queue_arguments
from busline.transports.rabbitmq.properties import FastProperties, fast
from busline.transports.rabbitmq.topology import queue_arguments
from busline.transports.rabbitmq.wire import (
    envelope_from,
    properties_for,
    republish_properties,
    wire_table,
)
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from busline.envelope import Envelope

MULTIPLE, SINGLE, NACK = 2, 1, 0


class RecordingChannel:
    """Stands in for an AMQP channel: records the ack frames it is asked to send."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, int, bool]] = []

    def ack(self, tag: int, multiple: bool = False) -> None:
        self.frames.append(("ack", tag, multiple))

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.frames.append(("nack", tag, requeue))


def tracker(prefetch: int = 8) -> AckTracker:
    return AckTracker(RecordingChannel(), prefetch, "q")  # type: ignore[arg-type]


def test_in_order_settlements_become_one_multiple_ack():
    acks = tracker()
    for tag in range(1, 6):
        acks.delivered(tag)
        acks.ack(tag)
    assert acks.take_frames() == [(5, MULTIPLE)]
    assert acks.take_frames() == []
    assert acks.pending() == 0


def test_nothing_is_acked_past_an_unsettled_message():
    acks = tracker()
    for tag in range(1, 6):
        acks.delivered(tag)
    for tag in (1, 2, 4, 5):
        acks.ack(tag)
    assert acks.take_frames() == [(2, MULTIPLE)]  # 3 is still being handled
    acks.ack(3)
    assert acks.take_frames() == [(5, MULTIPLE)]


def test_settled_messages_behind_a_slow_one_are_acked_singly_to_free_the_window():
    acks = tracker(prefetch=8)  # four waiting behind a gap are enough
    for tag in range(1, 10):
        acks.delivered(tag)
    for tag in (2, 3, 4):
        acks.ack(tag)
    assert acks.take_frames() == []
    acks.ack(5)
    assert acks.take_frames() == [(2, SINGLE), (3, SINGLE), (4, SINGLE), (5, SINGLE)]
    acks.ack(6)
    acks.ack(1)
    # 1 closes the gap; 2-5 are gone from the broker already, so the multiple ack names 6
    # (naming an already-acked tag would close the channel).
    assert acks.take_frames() == [(6, MULTIPLE)]
    assert acks.pending() == 3


def test_a_run_of_singly_acked_tags_needs_no_multiple_ack():
    acks = tracker(prefetch=2)  # one waiting is enough
    for tag in (1, 2):
        acks.delivered(tag)
    acks.ack(2)
    assert acks.take_frames() == [(2, SINGLE)]
    acks.ack(1)
    assert acks.take_frames() == [(1, MULTIPLE)]


def test_requeues_go_out_before_acks_that_would_cover_them():
    acks = tracker()
    for tag in (1, 2, 3):
        acks.delivered(tag)
    acks.ack(1)
    acks.requeue(2)
    acks.ack(3)
    assert acks.take_frames() == [(2, NACK), (3, MULTIPLE)]


async def test_the_ack_task_sends_what_was_settled_and_flushes_on_stop():
    acks = tracker()
    channel = acks._channel
    acks.start()
    for tag in range(1, 5):
        acks.delivered(tag)
    acks.requeue(2)
    for tag in (1, 3, 4):
        acks.ack(tag)
    await acks.flush_and_stop()
    assert channel.frames == [("nack", 2, True), ("ack", 4, True)]
    assert not acks.alive
    assert not acks.ack(5)  # after the channel is gone: a no-op


def test_properties_carry_the_envelope():
    envelope = Envelope(
        message_id="m-1",
        message_type="shop.PlaceOrder",
        body=b"{}",
        correlation_id="c-1",
        conversation_id="v-1",
        causation_id="x-1",
        idempotency_key="k-1",
        attempt=2,
        timestamp=1_700_000_000.7,
        source="checkout",
        headers={"traceparent": "00-abc-def-01"},
    )
    props = properties_for(envelope)
    assert props.message_id == "m-1"
    assert props.correlation_id == "c-1"
    assert props.message_type == "shop.PlaceOrder"
    assert props.content_type == "application/json"
    assert props.timestamp == datetime.fromtimestamp(1_700_000_000, UTC)
    assert props.app_id == "checkout"
    assert props.delivery_mode == 2
    assert props.headers == {
        "traceparent": "00-abc-def-01",
        "busline-conversation-id": "v-1",
        "busline-attempt": 2,
        "busline-causation-id": "x-1",
        "busline-idempotency-key": "k-1",
    }
    back = envelope_from(b"{}", props)
    assert back.message_id == "m-1"
    assert (back.correlation_id, back.conversation_id, back.causation_id) == ("c-1", "v-1", "x-1")
    assert (back.idempotency_key, back.attempt, back.source) == ("k-1", 2, "checkout")
    assert back.timestamp == 1_700_000_000
    assert back.headers == {"traceparent": "00-abc-def-01"}


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [("3", 3), (b"4", 4), (5.0, 5), ("nope", 1), (0, 1), (-2, 1), (None, 1), ([1], 1)],
)
def test_odd_attempt_headers_never_fail(attempt: Any, expected: int):
    props = Basic.Properties(headers={"busline-attempt": attempt}, message_type="t")
    assert envelope_from(b"", props).attempt == expected


def test_a_bare_message_gets_defaults():
    envelope = envelope_from(b"x", Basic.Properties())
    assert len(envelope.message_id) >= 16
    assert envelope.correlation_id == envelope.conversation_id == envelope.message_id
    assert envelope.message_type == ""
    assert envelope.source == ""
    assert envelope.attempt == 1
    assert envelope.headers == {}


def test_header_bytes_become_text_where_they_are_text():
    props = Basic.Properties(
        headers={"a": b"text", "b": bytearray(b"\xff\x00"), "busline-causation-id": b"\xff"}
    )
    envelope = envelope_from(b"", props)
    assert envelope.headers == {"a": "text", "b": b"\xff\x00"}
    assert envelope.causation_id == "\ufffd"


def test_republishing_keeps_the_original_and_drops_what_would_break_it():
    original = Basic.Properties(
        message_id="m-1",
        message_type="t",
        headers={"x-death": [{"count": 1, "time": datetime.now(UTC)}], "keep": "me"},
        expiration="1000",
        user_id="someone-else",
        delivery_mode=1,
        priority=4,
    )
    props = republish_properties(original, "ignored", {"busline-error-reason": "too-large"})
    assert props.message_id == "m-1"
    assert props.expiration is None and props.user_id is None
    assert props.delivery_mode == 2 and props.priority == 4
    assert props.headers["keep"] == "me"
    assert props.headers["busline-error-reason"] == "too-large"
    assert props.headers["x-death"][0]["count"] == 1
    assert republish_properties(Basic.Properties(), "m-2", {}).message_id == "m-2"


def test_wire_table_converts_only_what_amqp_cannot_carry():
    plain = {"a": "b", "n": 1, "f": 1.5, "t": True, "none": None}
    assert wire_table(plain) is plain
    converted = wire_table({"b": b"\x00", "big": 2**70, "obj": object, "nested": {"l": (b"x",)}})
    assert converted["b"] == bytearray(b"\x00")
    assert converted["big"] == str(2**70)
    assert converted["obj"] == str(object)
    assert converted["nested"] == {"l": [bytearray(b"x")]}


@pytest.mark.parametrize(
    ("seconds", "level"),
    [
        (0.0001, 1),
        (0.05, 50),
        (0.099, 99),
        (0.101, 110),
        (1.0, 1000),
        (1.234, 1300),
        (10.0, 10000),
        (61.5, 62000),
    ],
)
def test_delays_round_up_to_two_significant_digits(seconds: float, level: int):
    assert delay_level(seconds) == level
    assert level >= seconds * 1000


def test_delay_levels_dead_letter_home_safely():
    assert delay_name(1000, "quorum") == "busline.delay.1000"
    assert delay_name(1000, "classic") == "busline.delay.1000.classic"
    assert delay_queue_arguments(1000, "quorum") == {
        "x-message-ttl": 1000,
        "x-dead-letter-exchange": "",
        "x-queue-type": "quorum",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert delay_queue_arguments(1000, "classic") == {
        "x-message-ttl": 1000,
        "x-dead-letter-exchange": "",
    }
    assert queue_arguments("quorum") == {"x-queue-type": "quorum"}
    assert queue_arguments("classic") == {}


def _decode_header(properties: Basic.Properties, body_size: int = 0) -> ContentHeader:
    """Encode a content header with pamqp's frame encoder (which calls the properties'
    ``marshal()``, as the AMQP client does), then decode it with pamqp."""
    payload = pamqp.frame.marshal(ContentHeader(0, body_size, properties), 7)
    _consumed, _channel, frame = pamqp.frame.unmarshal(payload)
    assert isinstance(frame, ContentHeader)
    return frame


def test_fast_properties_encode_like_pamqp():
    envelope = Envelope(
        message_id="m-1",
        message_type="shop.PlaceOrder",
        body=b'{"order_id":"o-1"}',
        correlation_id="c-1",
        conversation_id="v-1",
        idempotency_key="k-1",
        attempt=3,
        timestamp=1_700_000_000.5,
        source="checkout",
        headers={"x-float": 1.5, "x-nested": {"a": [1, "b"]}, "x-bool": True},
    )
    properties = properties_for(envelope)
    assert isinstance(properties, FastProperties)
    header = _decode_header(properties, len(envelope.body))
    assert header.body_size == len(envelope.body)
    assert header.properties == properties
    # Byte for byte as pamqp's generic encoder, but for the order of header-table keys.
    reference = Basic.Properties()
    reference.unmarshal(*_flags_and_data(Basic.Properties.marshal(properties)))
    assert reference == header.properties


def _flags_and_data(encoded: bytes) -> tuple[int, bytes]:
    return int.from_bytes(encoded[:2], "big"), encoded[2:]


def test_republished_properties_keep_every_property():
    original = Basic.Properties(
        content_type="text/plain",
        content_encoding="gzip",
        headers={"x-bytes": bytearray(b"\x00\xff"), "n": 2**40},
        priority=5,
        reply_to="replies",
        expiration="60000",
        message_id="m-9",
        timestamp=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        message_type="t",
        user_id="guest",
        app_id="svc",
    )
    properties = republish_properties(original, "m-9", {"busline-error": "boom"})
    decoded = _decode_header(properties).properties
    assert decoded == properties
    assert decoded.headers["busline-error"] == "boom"
    assert (decoded.expiration, decoded.user_id) == (None, None)  # dropped on purpose
    assert _decode_header(fast(original)).properties == original


def test_over_long_short_strings_are_refused():
    envelope = Envelope("m", "t", b"", "c" * 300, "c")
    with pytest.raises(ValueError, match="255"):
        properties_for(envelope).marshal()


def test_the_final_flush_acks_every_settled_message():
    acks = tracker(prefetch=32)
    for tag in (1, 2, 3, 4):
        acks.delivered(tag)
    for tag in (1, 3, 4):  # 2 never finishes (its handler was cancelled at shutdown)
        acks.ack(tag)
    assert acks.take_frames() == [(1, MULTIPLE)]
    assert acks.take_frames(final=True) == [(3, SINGLE), (4, SINGLE)]
