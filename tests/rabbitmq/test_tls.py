"""amqps:// against a real TLS listener: a CA and a server certificate made here, a broker node
started with them, verification on. A message goes through; a client trusting another CA is
refused with a clear error."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from busline import Bus, Command
from tests import servers

ROOT = Path(__file__).resolve().parents[2]
#: The TLS node's plain AMQP port; it listens for TLS on the next one.
PORT = 5695

pytestmark = pytest.mark.rabbitmq


class Ping(Command, wire_name="tls.Ping"):
    n: int


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=busline test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
        cwd=folder,
    )  # fmt: skip


def make_server_certificate(folder: Path) -> None:
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr", cwd=folder,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem",
        cwd=folder,
    )  # fmt: skip
    # The broker runs as this user and reads the key from here.
    os.chmod(folder / "server.key", 0o644)


def services(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "services.sh"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A broker node with a TLS listener on PORT + 1, its certificates in the yielded folder."""
    servers.rabbitmq_url()  # skips (or, in CI, fails) when RabbitMQ is not installed here
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test's certificates")
    folder = tmp_path_factory.mktemp("tls")
    folder.chmod(0o755)
    make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    make_server_certificate(folder)
    env = {"BUSLINE_RABBIT_PORT": str(PORT), "BUSLINE_RABBIT_TLS_DIR": str(folder)}
    started = services("start-rabbitmq", env=env)
    assert started.returncode == 0, started.stderr
    try:
        yield folder
    finally:
        services("stop-rabbitmq", env=env)


def client_context(ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
    return context


async def test_a_message_goes_through_a_verified_tls_connection(tls_node):
    bus = Bus(
        "tls",
        f"amqps://guest:guest@127.0.0.1:{PORT + 1}/",
        transport_options={"ssl_context": client_context(tls_node / "ca.pem")},
        send_timeout=10.0,
    )
    got: list[int] = []
    done = asyncio.Event()

    @bus.command_handler
    async def ping(cmd: Ping) -> None:
        got.append(cmd.n)
        done.set()

    async with bus:
        await bus.send(Ping(n=7))
        await asyncio.wait_for(done.wait(), 10)
    assert got == [7]


async def test_a_server_signed_by_another_ca_is_refused_clearly(tls_node):
    bus = Bus(
        "tls",
        f"amqps://guest:guest@127.0.0.1:{PORT + 1}/",
        transport_options={"ssl_context": client_context(tls_node / "other-ca.pem")},
        send_timeout=3.0,
    )
    with pytest.raises(ConnectionError) as refused:
        await bus.start()
    message = str(refused.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message or "certificate verify failed" in message
    assert "guest:guest" not in message
