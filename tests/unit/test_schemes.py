"""One registry of URL schemes: third-party transports plug in, lookups fail clearly."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from busline.transports.memory import MemoryTransport
from busline.transports.memory_errors import MemoryErrorQueue

from busline import Bus, Context, Envelope, Reject, RetryPolicy
from busline.errorqueue import open_error_queue
from busline.schemes import MissingDependencyError, register_scheme, unregister_scheme
from busline.stores import check_store_url, open_store
from busline.transport import TransportSettings, open_transport, register_transport
from tests.contract.messages import PlaceOrder
from tests.support import eventually


def _inner(url: str) -> str:
    """``relay://name`` runs on the in-process broker ``memory://relay-name``."""
    return "memory://relay-" + url.partition("://")[2]


class RelayTransport(MemoryTransport):
    """A third-party transport: the in-process broker under its own scheme, counting sends."""

    system = "relay"

    def __init__(self, url: str, settings: TransportSettings) -> None:
        super().__init__(_inner(url), settings)
        self.sent = 0

    async def send(self, queue: str, envelope: Envelope) -> None:
        self.sent += 1
        await super().send(queue, envelope)


class RelayErrorQueue(MemoryErrorQueue):
    """The same third party's error-queue admin."""

    @classmethod
    async def open(cls, url: str, error_queue: str) -> MemoryErrorQueue:
        return await MemoryErrorQueue.open(_inner(url), error_queue)


@pytest.fixture
def relay_scheme() -> Iterator[str]:
    name = f"relay{uuid.uuid4().hex[:6]}"
    register_scheme(name, transport=RelayTransport, error_queue=RelayErrorQueue)
    yield name
    unregister_scheme(name)


async def test_a_registered_scheme_runs_a_bus_and_its_error_queue(relay_scheme):
    url = f"{relay_scheme}://shop-{uuid.uuid4().hex[:6]}"
    bus = Bus("orders", url, retry=RetryPolicy(immediate=0, delays=()))
    handled: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        if cmd.order_id == "bad":
            raise Reject("malformed")
        handled.append(cmd.order_id)

    async with bus:
        assert isinstance(bus.transport, RelayTransport)
        await bus.send(PlaceOrder(order_id="good", amount=1.0))
        bad_id = await bus.send(PlaceOrder(order_id="bad", amount=1.0))
        await eventually(lambda: handled == ["good"], what="the good order handled")
        errors = await open_error_queue(url)
        try:

            async def parked() -> bool:
                return [m.message_id for m in await errors.browse()] == [bad_id]

            await eventually(parked, what="the bad order parked")
            assert await errors.purge() == 1
        finally:
            await errors.close()
        assert bus.transport.sent == 2


async def test_register_transport_alone_keeps_working_and_adds_no_error_queue():
    name = f"plain{uuid.uuid4().hex[:6]}"
    register_transport(name, RelayTransport)
    try:
        transport = open_transport(f"{name}://x", TransportSettings(service="svc"))
        assert isinstance(transport, RelayTransport)
        await transport.close()
        with pytest.raises(ValueError, match=f"no error-queue support for URL '{name}://x'"):
            await open_error_queue(f"{name}://x")
        # Adding the admin later extends the scheme; the transport stays registered.
        register_scheme(name, error_queue=RelayErrorQueue)
        errors = await open_error_queue(f"{name}://x")
        await errors.close()
        assert isinstance(open_transport(f"{name}://x", TransportSettings("s")), RelayTransport)
    finally:
        unregister_scheme(name)


async def test_unknown_schemes_name_the_known_ones_and_hide_the_password():
    url = "nosuch://admin:hunter2@broker:5672/"
    with pytest.raises(ValueError) as transport_error:
        open_transport(url, TransportSettings(service="svc"))
    message = str(transport_error.value)
    assert message.startswith("no transport for URL 'nosuch://admin:***@broker:5672/'")
    assert "known schemes: amqp://, amqps://, memory://" in message
    assert "hunter2" not in message and "\n" not in message

    with pytest.raises(ValueError, match=r"no store for URL .*known schemes: .*sqlite://"):
        check_store_url("amqp://guest:secret@host/")
    with pytest.raises(ValueError) as store_error:
        open_store("memory://")
    assert "postgresql://" in str(store_error.value) and "memory://," not in str(store_error.value)
    with pytest.raises(ValueError, match=r"no error-queue support .*known schemes: amqp://"):
        await open_error_queue("sqlite:///errors.db")


async def test_a_missing_dependency_names_what_to_install():
    name = f"ext{uuid.uuid4().hex[:6]}"
    register_scheme(
        name,
        transport="busline_plugin_that_is_not_installed.transport:Transport",
        install="busline-plugin[ext]",
    )
    try:
        with pytest.raises(ImportError) as caught:
            await Bus("svc", f"{name}://u:pw@host/").start()
        assert isinstance(caught.value, MissingDependencyError)
        message = str(caught.value)
        assert f"the {name}:// transport needs an optional dependency" in message
        assert "busline_plugin_that_is_not_installed" in message
        assert message.endswith("Install it with: pip install 'busline-plugin[ext]'")
    finally:
        unregister_scheme(name)


def test_a_lazy_name_missing_from_its_module_is_reported():
    name = f"typo{uuid.uuid4().hex[:6]}"
    register_scheme(name, transport="busline.transports.memory:NoSuchTransport")
    try:
        with pytest.raises(ImportError, match="has no 'NoSuchTransport'"):
            open_transport(f"{name}://", TransportSettings(service="svc"))
    finally:
        unregister_scheme(name)


def test_importing_busline_loads_no_transport_or_driver():
    code = (
        "import sys, busline, busline.schemes, busline.stores, busline.errorqueue\n"
        "loaded = [m for m in ('aio_pika', 'aiosqlite', 'asyncpg', 'busline.transports.memory',"
        " 'busline.transports.rabbitmq', 'busline.stores.sqlite') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
