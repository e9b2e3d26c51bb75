"""What a connection needs, parsed once from the URL and the transport options: the masked
URL for messages, TLS, heartbeat, timeouts and reconnect backoff."""

from __future__ import annotations

import random
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from busline.urls import mask_url

#: Seconds: short enough that the broker's heartbeats (every half of it, when idle) let a stall
#: be told from a quiet connection well within DEFAULT_STALL_TIMEOUT.
DEFAULT_HEARTBEAT = 10
#: Seconds without a frame from the broker after which a connection counts as stalled and is
#: dropped (with the cause logged) and re-made: issue 15 asks for about 15-20 s.
DEFAULT_STALL_TIMEOUT = 15.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RECONNECT_DELAY = 0.25
DEFAULT_RECONNECT_MAX_DELAY = 5.0


class ConnectionConfig:
    """Everything needed to open a connection, parsed once from the URL and options.

    The URL may name several broker nodes, comma-separated (``amqp://u:p@node1/vh,amqp://u:p@
    node2/vh``): a connection goes to the first that answers, and a lost one is re-made on the
    next node that does (:attr:`urls`).

    Options (``Bus(transport_options=...)``): ``ssl_context`` (an :class:`ssl.SSLContext` for
    ``amqps://``, replacing the one built from the URL), ``heartbeat`` (seconds, default 10),
    ``stall_timeout`` (seconds without a frame from the broker before the connection is
    dropped as stalled and re-made, default 15),
    ``connect_timeout`` (seconds per attempt, default 10), ``connection_name`` (shown in the
    management UI), ``reconnect_delay`` / ``reconnect_max_delay`` (backoff bounds, seconds).

    For ``amqps://`` without an ``ssl_context`` option, a verifying default context is built;
    the query parameters ``cafile``, ``capath``, ``certfile``, ``keyfile`` and
    ``no_verify_ssl=1`` adjust it.
    """

    __slots__ = (
        "connect_timeout",
        "connection_name",
        "heartbeat",
        "masked",
        "reconnect_delay",
        "reconnect_max_delay",
        "secrets",
        "ssl_context",
        "stall_timeout",
        "tls",
        "url",
        "urls",
    )

    masked: str
    secrets: tuple[str, ...]
    tls: bool
    heartbeat: int
    stall_timeout: float
    connect_timeout: float
    connection_name: str
    reconnect_delay: float
    reconnect_max_delay: float
    url: str
    urls: tuple[str, ...]
    ssl_context: ssl.SSLContext | None

    def __init__(self, url: str, service: str, options: Mapping[str, Any]) -> None:
        nodes = node_urls(url)
        if not nodes:
            raise ValueError("an AMQP URL is needed, e.g. amqp://user:pass@host:5672/vhost")
        found: set[str] = set()
        schemes: set[str] = set()
        for node in nodes:
            parts = urlsplit(node)
            scheme = parts.scheme.lower()
            if scheme not in ("amqp", "amqps"):
                raise ValueError(f"not an AMQP URL: {mask_url(node)!r}")
            schemes.add(scheme)
            raw = parts.password
            found.update(p for p in (raw and unquote(raw), raw) if p and len(p) >= 3)
        #: Every broker node's URL, tried in this order.
        self.urls = nodes
        parsed = urlsplit(nodes[0])
        #: Safe to log: the URL(s) with every password masked.
        self.masked = mask_url(url)
        #: The passwords (decoded and as written), kept only to scrub them from other libraries'
        #: error messages. Very short ones are not scrubbed: they would mangle every message.
        self.secrets = tuple(sorted(found, key=len, reverse=True))
        self.tls = "amqps" in schemes
        query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        heartbeat = options.get("heartbeat", query.get("heartbeat", DEFAULT_HEARTBEAT))
        self.heartbeat = int(heartbeat)
        self.stall_timeout = float(options.get("stall_timeout", DEFAULT_STALL_TIMEOUT))
        if self.heartbeat and self.stall_timeout < self.heartbeat:
            raise ValueError(
                f"transport option stall_timeout ({self.stall_timeout:g}s) must be at least the "
                f"heartbeat ({self.heartbeat}s): a quiet connection would count as stalled"
            )
        self.connect_timeout = float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        self.connection_name = str(options.get("connection_name", f"busline {service}"))
        self.reconnect_delay = float(options.get("reconnect_delay", DEFAULT_RECONNECT_DELAY))
        self.reconnect_max_delay = float(
            options.get("reconnect_max_delay", DEFAULT_RECONNECT_MAX_DELAY)
        )
        #: The URL as given (the client reads host, port, credentials and vhost from it; the
        #: heartbeat and TLS context are decided here, from the options and the query string).
        self.url = url
        self.ssl_context = None
        if self.tls:
            given = options.get("ssl_context")
            if given is not None and not isinstance(given, ssl.SSLContext):
                raise TypeError("transport option 'ssl_context' must be an ssl.SSLContext")
            self.ssl_context = given or _context_from_query(query)

    def __repr__(self) -> str:
        return f"<ConnectionConfig {self.masked!r}>"

    def scrub(self, text: str) -> str:
        """Remove the password from ``text`` (error messages of libraries may quote the URL)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (0-based): exponential, capped,
        jittered so that many clients do not reconnect in lockstep after a broker restart."""
        ceiling = min(self.reconnect_max_delay, self.reconnect_delay * (2.0 ** min(attempt, 16)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def node_urls(url: str) -> tuple[str, ...]:
    """The broker nodes' URLs in ``url`` (comma-separated), in order, blanks left out."""
    return tuple(part.strip() for part in url.split(",") if part.strip())


def _context_from_query(query: Mapping[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=query.get("cafile"), capath=query.get("capath")
    )
    if query.get("certfile"):
        context.load_cert_chain(query["certfile"], query.get("keyfile"))
    if query.get("no_verify_ssl", "0") not in ("0", "", "false"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
