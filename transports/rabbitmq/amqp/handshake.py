"""Opening a connection: the URL's parts, and the Start/Tune/Open exchange with the broker.

Refusals are permanent and raised at once with the broker's own reason: wrong credentials
(``ACCESS_REFUSED`` on ``Connection.Close``, which RabbitMQ sends because we announce the
``authentication_failure_close`` capability) and a vhost that does not exist or is not
permitted (``NOT_ALLOWED`` in reply to ``Connection.Open``).
"""

from __future__ import annotations

import platform
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pamqp.base import Frame
from pamqp.commands import Connection as C

from .codec import method_frame
from .errors import (
    AuthenticationError,
    BrokerRefusedError,
    ProtocolError,
    VhostNotAllowedError,
)

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
#: What we can do that the broker should know about (RabbitMQ's client capabilities).
CAPABILITIES: dict[str, Any] = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "publisher_confirms": True,
    "per_consumer_qos": True,
    "exchange_exchange_bindings": True,
}


@dataclass(frozen=True)
class Params:
    """Where and how to connect, from an ``amqp://`` or ``amqps://`` URL and options."""

    host: str
    port: int
    user: str
    password: str
    vhost: str
    tls: bool
    heartbeat: int = 60
    frame_max: int = 131072
    channel_max: int = 2047

    def __repr__(self) -> str:  # never show the password
        scheme = "amqps" if self.tls else "amqp"
        return f"Params({scheme}://{self.user}:***@{self.host}:{self.port}/{self.vhost})"


def parse_url(url: str, heartbeat: int | None = None) -> Params:
    """The connection parameters of an AMQP URL (the vhost is the path, ``/`` if empty;
    ``heartbeat`` may come from the query string)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise ValueError(f"not an AMQP URL (scheme {scheme!r})")
    tls = scheme == "amqps"
    path = parts.path
    vhost = unquote(path[1:]) if len(path) > 1 else "/"
    query = parse_qs(parts.query)
    if heartbeat is None:
        heartbeat = int(query.get("heartbeat", ["60"])[0])
    return Params(
        host=parts.hostname or "localhost",
        port=parts.port or (5671 if tls else 5672),
        user=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        vhost=vhost,
        tls=tls,
        heartbeat=heartbeat,
    )


@dataclass(frozen=True)
class Tuned:
    """What both sides agreed on."""

    channel_max: int
    frame_max: int
    heartbeat: int
    server_properties: dict[str, Any]


def negotiate(client: int, server: int) -> int:
    """The lower of two limits, where 0 means "no limit" on either side."""
    if client == 0 or server == 0:
        return max(client, server)
    return min(client, server)


def client_properties(extra: dict[str, Any] | None) -> dict[str, Any]:
    """What the management UI shows about this client (``connection_name`` among them)."""
    properties: dict[str, Any] = {
        "product": "busline",
        "platform": f"Python {platform.python_version()}",
        "capabilities": CAPABILITIES,
    }
    properties.update(extra or {})
    return properties


NextFrame = Callable[[], Awaitable[Frame]]
Write = Callable[[bytes], None]


async def handshake(
    params: Params, next_frame: NextFrame, write: Write, properties: dict[str, Any]
) -> Tuned:
    """Run the handshake; ``next_frame`` yields channel-0 methods (raising once the socket is
    gone), ``write`` sends bytes."""
    write(PROTOCOL_HEADER)
    start = await next_frame()
    if not isinstance(start, C.Start):
        raise ProtocolError(f"expected Connection.Start, got {start.name}")
    mechanisms = start.mechanisms
    if isinstance(mechanisms, bytes):
        mechanisms = mechanisms.decode("utf-8", "replace")
    if "PLAIN" not in str(mechanisms).split():
        raise AuthenticationError(f"the broker does not offer PLAIN (only {mechanisms})")
    response = f"\0{params.user}\0{params.password}"
    write(method_frame(C.StartOk(client_properties=properties, response=response), 0))
    try:
        tune = await next_frame()
    except ConnectionError:
        # Brokers that ignore authentication_failure_close just drop the socket.
        raise AuthenticationError("the broker closed the connection after the login") from None
    if isinstance(tune, C.Close):
        write(method_frame(C.CloseOk(), 0))
        raise _refusal(tune, AuthenticationError)
    if not isinstance(tune, C.Tune):
        raise ProtocolError(f"expected Connection.Tune, got {tune.name}")
    tuned = Tuned(
        channel_max=negotiate(params.channel_max, tune.channel_max) or 65535,
        frame_max=negotiate(params.frame_max, tune.frame_max),
        # Our 0 means "no heartbeats", whatever the broker proposes.
        heartbeat=0 if params.heartbeat == 0 else negotiate(params.heartbeat, tune.heartbeat),
        server_properties=dict(start.server_properties or {}),
    )
    write(
        method_frame(
            C.TuneOk(
                channel_max=tuned.channel_max,
                frame_max=tuned.frame_max,
                heartbeat=tuned.heartbeat,
            ),
            0,
        )
    )
    write(method_frame(C.Open(virtual_host=params.vhost), 0))
    opened = await next_frame()
    if isinstance(opened, C.Close):
        write(method_frame(C.CloseOk(), 0))
        raise _refusal(opened, VhostNotAllowedError)
    if not isinstance(opened, C.OpenOk):
        raise ProtocolError(f"expected Connection.OpenOk, got {opened.name}")
    return tuned


def _refusal(close: C.Close, default: type[BrokerRefusedError]) -> BrokerRefusedError:
    code, text = int(close.reply_code or 0), str(close.reply_text or "")
    kind = AuthenticationError if text.startswith("ACCESS_REFUSED") and code == 403 else default
    return kind(f"RabbitMQ refused the connection: {code} {text}", code, text)


def tls_server_name(params: Params, context: ssl.SSLContext | None) -> str | None:
    """The host name TLS checks the certificate against (``None`` without TLS)."""
    return params.host if context is not None else None
