"""Small pieces: URL masking, the codec, the virtual clock, retry policies, envelopes."""

from __future__ import annotations

import pytest

from busline import Bus, Command, FailureReason, RetryPolicy
from busline.codec import BodyDecodeError, decode, encode
from busline.envelope import Envelope
from busline.testing import VirtualClock
from busline.urls import mask_url


class Item(Command, wire_name="unit.Item"):
    name: str
    qty: int = 1


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://user:s3cret@host:5672/vh", "amqp://user:***@host:5672/vh"),
        ("amqps://u:p%40ss@broker/", "amqps://u:***@broker/"),
        ("postgresql://app:pw@[::1]:5432/db", "postgresql://app:***@[::1]:5432/db"),
        ("memory://shop", "memory://shop"),
    ],
)
def test_passwords_are_masked(url, masked):
    assert mask_url(url) == masked


def test_bus_repr_hides_the_password():
    bus = Bus("svc", url="amqp://user:s3cret@host/")
    assert "s3cret" not in repr(bus)


def test_codec_round_trip_and_failure_reasons():
    assert decode(encode(Item(name="a", qty=2)), Item) == Item(name="a", qty=2)
    with pytest.raises(BodyDecodeError) as schema:
        decode(b'{"name": 1}', Item)
    assert schema.value.reason is FailureReason.SCHEMA_MISMATCH
    with pytest.raises(BodyDecodeError) as garbage:
        decode(b"\x00\x01", Item)
    assert garbage.value.reason is FailureReason.UNDECODABLE


def test_virtual_clock_runs_due_callbacks_in_order():
    clock = VirtualClock(start=100.0)
    ran: list[str] = []
    clock.call_later(5, lambda: ran.append("five"))
    clock.call_later(1, lambda: ran.append("one"))
    cancelled = clock.call_later(2, lambda: ran.append("never"))
    cancelled.cancel()
    assert clock.advance(3) == 1 and ran == ["one"]
    assert clock.now() == 103.0
    clock.advance(2)
    assert ran == ["one", "five"]
    assert clock.pending == 0


def test_retry_policy_arithmetic_and_validation():
    policy = RetryPolicy(immediate=2, delays=(1, 10))
    assert policy.max_attempts == 9
    assert policy.window == 11.0
    with pytest.raises(ValueError):
        RetryPolicy(immediate=-1)
    with pytest.raises(ValueError):
        RetryPolicy(delays=(0,))


def test_envelope_with_headers_maps_busline_headers_to_fields():
    envelope = Envelope("m", "t", b"{}", "c", "v", headers={"keep": 1})
    updated = envelope.with_headers({"busline-attempt": 4, "extra": "x"})
    assert updated.attempt == 4
    assert updated.headers == {"keep": 1, "extra": "x"}
    assert envelope.attempt == 1 and envelope.headers == {"keep": 1}
