"""Credentials never reach output: every password in every URL is masked, lists included."""

from __future__ import annotations

import pytest

from busline.urls import mask_text, mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:guest@localhost:5672/vh", "amqp://guest:***@localhost:5672/vh"),
        ("amqp://u:p1@h1/v,amqp://u:p2@h2/v", "amqp://u:***@h1/v,amqp://u:***@h2/v"),
        ("postgresql://app:s%40cret@[::1]:5432/db", "postgresql://app:***@[::1]:5432/db"),
        ("memory://shop", "memory://shop"),
        ("amqp://user@host/", "amqp://user@host/"),
    ],
)
def test_mask_url(url: str, masked: str):
    assert mask_url(url) == masked


def test_mask_text_masks_every_url_inside_a_message():
    text = (
        "argument --url: invalid choice 'amqp://admin:hunter2@node1:5672/prod' "
        "(also tried amqps://admin:hunter3@node2/prod; postgresql://x:y@db/app)"
    )
    masked = mask_text(text)
    for secret in ("hunter2", "hunter3", ":y@"):
        assert secret not in masked
    assert "amqp://admin:***@node1:5672/prod" in masked
