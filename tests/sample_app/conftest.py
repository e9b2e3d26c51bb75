"""Where the shop's end-to-end tests run: memory + SQLite, and RabbitMQ + PostgreSQL (a fresh
vhost, fresh schemas). Without a server the second skips, or fails with ``CI=true``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from busline.testing import memory_url
from sample_app.shop import Shop


@pytest.fixture(params=["memory+sqlite", "rabbitmq+postgres"])
def where(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str]:
    """(broker URL, store) of one test run."""
    if request.param == "memory+sqlite":
        return memory_url("shop"), str(tmp_path)
    from tests import servers

    return request.getfixturevalue("amqp_url"), servers.postgres_url()


@pytest.fixture
async def dropped() -> AsyncIterator[list]:
    """Configs whose PostgreSQL schemas are dropped after the test."""
    configs: list = []
    yield configs
    for config in configs:
        await Shop(config, ()).drop_all()
