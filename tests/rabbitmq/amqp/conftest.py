"""Fixtures of the AMQP client's tests: a connection to a fresh vhost, and a misbehaving
proxy in front of the broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from busline.transports.rabbitmq.amqp import Connection, connect

from .proxy import Proxy


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[Connection]:
    """An open connection to this test's vhost, closed afterwards."""
    opened = await connect(amqp_url)
    yield opened
    await opened.close()


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[Proxy]:
    """A proxy to the broker (``proxy.url(amqp_url)`` connects through it)."""
    parts = urlsplit(amqp_url)
    started = await Proxy(parts.hostname or "127.0.0.1", parts.port or 5672).start()
    yield started
    await started.close()
