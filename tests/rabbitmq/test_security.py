"""Credentials never show: not in reprs, logs or errors. amqps:// builds a TLS connection."""

from __future__ import annotations

import logging
import ssl

import pytest
from busline.transports.rabbitmq import RabbitMQTransport
from busline.transports.rabbitmq.amqp.handshake import parse_url
from busline.transports.rabbitmq.config import ConnectionConfig

from busline import Bus
from busline.transport import TransportSettings

SECRET = "s3cret-Pa55"


def test_reprs_mask_the_password():
    url = f"amqp://app:{SECRET}@broker.example:5672/prod"
    transport = RabbitMQTransport(url, TransportSettings(service="orders"))
    assert SECRET not in repr(transport)
    assert "amqp://app:***@broker.example:5672/prod" in repr(transport)
    assert transport.url == "amqp://app:***@broker.example:5672/prod"
    assert SECRET not in repr(Bus("orders", url))
    assert SECRET not in repr(ConnectionConfig(url, "orders", {}))


async def test_an_unreachable_broker_fails_start_with_a_masked_url(caplog):
    caplog.set_level(logging.DEBUG)
    # Port 1 on loopback: nothing listens, every attempt is refused at once.
    bus = Bus("orders", f"amqp://app:{SECRET}@127.0.0.1:1/prod", send_timeout=1.0)
    with pytest.raises(ConnectionError) as raised:
        await bus.start()
    assert "amqp://app:***@127.0.0.1:1/prod" in str(raised.value)
    assert "within 1s" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert SECRET not in caplog.text
    assert "retrying" in caplog.text  # it did try again before giving up


@pytest.mark.rabbitmq
async def test_wrong_credentials_fail_at_once_without_showing_them(amqp_url, caplog):
    caplog.set_level(logging.DEBUG)
    url = amqp_url.replace("guest:guest@", f"guest:{SECRET}@")
    bus = Bus("orders", url, send_timeout=30)
    with pytest.raises(ConnectionError) as raised:
        await bus.start()
    message = str(raised.value)
    assert "amqp://guest:***@" in message
    assert "within" not in message  # permanent: no waiting for the timeout
    assert SECRET not in message
    assert SECRET not in caplog.text
    assert SECRET not in repr(bus) and SECRET not in repr(bus.transport)


def test_amqps_urls_build_a_verifying_tls_context():
    config = ConnectionConfig(f"amqps://app:{SECRET}@broker.example/prod", "orders", {})
    assert config.tls
    context = config.ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert config.masked == "amqps://app:***@broker.example/prod"


def test_an_ssl_context_option_replaces_the_default():
    mine = ssl.create_default_context()
    config = ConnectionConfig("amqps://broker.example/", "orders", {"ssl_context": mine})
    assert config.ssl_context is mine
    with pytest.raises(TypeError, match="ssl_context"):
        ConnectionConfig("amqps://broker.example/", "orders", {"ssl_context": "yes please"})


def test_no_verify_ssl_turns_verification_off():
    config = ConnectionConfig("amqps://broker.example/?no_verify_ssl=1", "orders", {})
    assert config.ssl_context is not None
    assert config.ssl_context.verify_mode == ssl.CERT_NONE
    assert not config.ssl_context.check_hostname


def test_plain_amqp_has_no_tls_and_options_are_read():
    config = ConnectionConfig(
        "amqp://broker.example/", "orders", {"heartbeat": 15, "connection_name": "orders-1"}
    )
    assert not config.tls
    assert config.ssl_context is None
    assert config.heartbeat == 15
    assert config.connection_name == "orders-1"


def test_amqps_connections_use_tls_on_port_5671():
    config = ConnectionConfig("amqps://app:pw@broker.example/prod?heartbeat=7", "orders", {})
    params = parse_url(config.url, config.heartbeat)
    assert params.tls and params.port == 5671 and params.vhost == "prod"
    assert config.ssl_context is not None and config.heartbeat == 7
    assert "pw" not in repr(params)


def test_not_an_amqp_url_is_refused_masked():
    with pytest.raises(ValueError) as raised:
        ConnectionConfig(f"http://app:{SECRET}@broker.example/", "orders", {})
    assert SECRET not in str(raised.value)


def test_library_messages_are_scrubbed_of_the_password_in_both_spellings():
    config = ConnectionConfig("amqp://app:p%40ss-w0rd@broker/", "orders", {})
    text = "failed for amqp://app:p%40ss-w0rd@broker/ (password p@ss-w0rd)"
    assert config.scrub(text) == "failed for amqp://app:***@broker/ (password ***)"
