"""Fixtures shared by every suite: transport URLs (memory, and RabbitMQ on a fresh vhost per
test) and a bus factory that stops what it started."""

from __future__ import annotations

import subprocess
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from busline import Bus
from busline.testing import memory_url

ROOT = Path(__file__).resolve().parent.parent


class VhostPool:
    """Fresh RabbitMQ vhosts, made in batches: one ``rabbitmqctl`` call costs about as much for
    twenty vhosts as for one, and a test must never see another test's queues."""

    BATCH = 20

    def __init__(self) -> None:
        self._unused: list[str] = []
        self._made: list[str] = []

    def take(self) -> str:
        if not self._unused:
            names = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(self.BATCH)]
            _services("add-vhosts", *names)
            self._unused.extend(names)
            self._made.extend(names)
        return self._unused.pop()

    def delete_all(self) -> None:
        # Best effort: a leftover vhost costs nothing, and cleanup must not fail a test run.
        if self._made:
            try:
                _services("delete-vhosts", *self._made)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                warnings.warn(f"could not delete test vhosts: {exc}", stacklevel=1)


def _services(*args: str) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/services.sh {args[0]} failed: {result.stderr.strip()}")


@pytest.fixture(scope="session")
def vhost_pool() -> Iterator[VhostPool]:
    """The session's supply of fresh vhosts, deleted at the end."""
    pool = VhostPool()
    yield pool
    pool.delete_all()


@pytest.fixture
def amqp_url(vhost_pool: VhostPool) -> str:
    """A URL to a fresh RabbitMQ vhost of its own (skips or, in CI, fails without a broker)."""
    from tests import servers

    base = servers.rabbitmq_url().rstrip("/")
    return f"{base}/{vhost_pool.take()}"


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
