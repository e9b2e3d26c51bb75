"""The handshake against the real broker: tuning, refusals raised at once with the broker's
reason, closes from either side, and TLS through a TLS-terminating proxy."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from busline.transports.rabbitmq.amqp import (
    AuthenticationError,
    ConnectionClosedError,
    VhostNotAllowedError,
    connect,
)

from .proxy import Proxy

pytestmark = pytest.mark.rabbitmq
ROOT = Path(__file__).resolve().parents[3]


async def test_handshake_negotiates_and_opens_the_vhost(amqp_url):
    connection = await connect(amqp_url + "?heartbeat=7", properties={"connection_name": "t"})
    try:
        tuned = connection.tuned
        assert tuned.heartbeat == 7  # ours is lower than the broker's 60
        assert tuned.frame_max == 131072 and tuned.channel_max == 2047
        assert tuned.server_properties["product"] == "RabbitMQ"
        channel = await connection.channel()
        await channel.queue_declare("here", durable=True)  # the vhost is usable
    finally:
        await connection.close()
    assert connection.closed.result() is None  # a clean close has no reason


async def test_heartbeat_zero_turns_heartbeats_off(amqp_url):
    connection = await connect(amqp_url, heartbeat=0)
    assert connection.tuned.heartbeat == 0
    await connection.close()


async def test_wrong_password_is_refused_at_once_with_the_reason(amqp_url):
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as raised:
        await connect(amqp_url.replace("guest:guest@", "guest:wrong@"))
    assert time.monotonic() - started < 5
    assert raised.value.reply_code == 403 and "ACCESS_REFUSED" in str(raised.value)
    assert "wrong" not in str(raised.value)


async def test_a_missing_vhost_is_refused_at_once_with_the_reason(amqp_url):
    with pytest.raises(VhostNotAllowedError) as raised:
        await connect(amqp_url + "-does-not-exist")
    assert raised.value.reply_code == 530 and "NOT_ALLOWED" in raised.value.reply_text


async def test_nothing_listening_is_a_connection_error():
    with pytest.raises(ConnectionError):
        await connect("amqp://guest:guest@127.0.0.1:1/")


async def test_a_close_by_the_broker_fails_what_waits_with_its_reason(connection, amqp_url):
    channel = await connection.channel()
    await channel.queue_declare("q")
    name = connection.params.vhost
    await asyncio.to_thread(
        subprocess.run,
        [
            "bash",
            str(ROOT / "scripts" / "services.sh"),
            "rabbitmqctl",
            "-q",
            "close_all_connections",
            "--vhost",
            name,
            "closed by test",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    reason = await asyncio.wait_for(asyncio.shield(connection.closed), 10)
    assert isinstance(reason, ConnectionClosedError)
    assert reason.reply_code == 320 and "closed by test" in reason.reply_text
    with pytest.raises(ConnectionClosedError):
        await channel.queue_declare("q")


@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate for 127.0.0.1 (openssl), as server and client contexts."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def test_tls_with_the_given_context(amqp_url, tls_files):
    server, client = tls_files
    proxy = await Proxy("127.0.0.1", 5672, tls=server).start()
    try:
        url = proxy.url(amqp_url, scheme="amqps")
        connection = await connect(url, ssl_context=client)
        channel = await connection.channel(confirms=True)
        await channel.queue_declare("tls")
        await channel.publish(b"over tls", "", "tls", mandatory=True)
        got = await channel.basic_get("tls", no_ack=True)
        assert got is not None and got.body == b"over tls"
        await connection.close()
        # A context that does not trust the certificate refuses the connection.
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(url, ssl_context=ssl.create_default_context())
    finally:
        await proxy.close()
