"""Fixtures shared by every suite: transport URLs (memory, and RabbitMQ on a fresh vhost per
test) and a bus factory that stops what it started."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from busline import Bus
from busline.testing import memory_url

ROOT = Path(__file__).resolve().parent.parent


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "rabbitmqctl", *args],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A URL to a fresh RabbitMQ vhost, deleted after the test (skips or fails without one)."""
    from tests import servers

    base = servers.rabbitmq_url().rstrip("/")
    vhost = f"t-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{base}/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(params=["memory", "rabbitmq"])
def bus_url(request: pytest.FixtureRequest) -> str:
    """Each contract test runs once per transport."""
    if request.param == "memory":
        return memory_url()
    url: str = request.getfixturevalue("amqp_url")
    return url


BusFactory = Callable[..., Bus]


@pytest.fixture
async def make_bus(bus_url: str) -> AsyncIterator[BusFactory]:
    """Build buses on this test's transport; any still running are stopped at the end."""
    made: list[Bus] = []

    def factory(service: str = "svc", **options: Any) -> Bus:
        options.setdefault("send_timeout", 10.0)
        options.setdefault("shutdown_timeout", 10.0)
        bus = Bus(service=service, url=bus_url, **options)
        made.append(bus)
        return bus

    yield factory
    for bus in reversed(made):
        await bus.stop()
