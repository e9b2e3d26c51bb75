"""Locating and controlling the external servers used by integration tests.

These are plain helpers, not fixtures: ``conftest.py`` wraps them.  The servers
themselves are started by ``scripts/services.sh start`` (``scripts/test`` does
that and exports the URLs below).

* :func:`rabbitmq_url` / :func:`postgres_url` return the URL to use, after a
  quick reachability probe.  When the server is unreachable they call
  ``pytest.skip`` - or ``pytest.fail`` when ``CI=true``, so a CI run can never
  go green by silently skipping every integration test.  Call them from a
  fixture or test (module level would need ``allow_module_level``).
* :func:`restart_rabbitmq`, :func:`stop_rabbitmq` and :func:`start_rabbitmq`
  drive the local broker for broker-restart/outage tests.  They block; from
  async tests use the ``a*`` variants (or ``asyncio.to_thread``) so the event
  loop - and the client's reconnect logic - keeps running meanwhile.

Environment:

``BUSLINE_TEST_AMQP_URL``
    default ``amqp://guest:guest@127.0.0.1:5672/``
``BUSLINE_TEST_PG_URL``
    default ``postgresql://busline:busline@127.0.0.1:5432/busline``
``CI``
    ``true`` turns "server unreachable" from a skip into a failure.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import struct
import subprocess
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = [
    "AMQP_URL_ENV",
    "DEFAULT_AMQP_URL",
    "DEFAULT_PG_URL",
    "PG_URL_ENV",
    "SERVICES_SCRIPT",
    "ServicesError",
    "arestart_rabbitmq",
    "astart_rabbitmq",
    "astop_rabbitmq",
    "postgres_url",
    "rabbitmq_url",
    "restart_rabbitmq",
    "start_rabbitmq",
    "stop_rabbitmq",
]

AMQP_URL_ENV = "BUSLINE_TEST_AMQP_URL"
PG_URL_ENV = "BUSLINE_TEST_PG_URL"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG_URL = "postgresql://busline:busline@127.0.0.1:5432/busline"

ROOT = Path(__file__).resolve().parent.parent
SERVICES_SCRIPT = ROOT / "scripts" / "services.sh"

#: Seconds allowed for the TCP connect + protocol greeting of a probe.
PROBE_TIMEOUT = 2.0
#: Upper bound for one services.sh invocation (a cold broker start is ~4 s).
SERVICES_TIMEOUT = 180.0

_AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ServicesError(RuntimeError):
    """A ``scripts/services.sh`` command failed; the message carries its output."""


# --------------------------------------------------------------------------
# URLs + reachability
# --------------------------------------------------------------------------


def rabbitmq_url() -> str:
    """Return the AMQP URL of the test broker, skipping/failing if unreachable.

    The URL comes from ``BUSLINE_TEST_AMQP_URL`` (default: the local node that
    ``scripts/services.sh`` runs).  Reachability means: TCP connect works and
    the peer answers the AMQP 0-9-1 protocol header with a frame, i.e. it is a
    broker that has finished booting.  The result is cached per process.
    """
    url = os.environ.get(AMQP_URL_ENV) or DEFAULT_AMQP_URL
    problem = _amqp_problem(url)
    if problem is not None:
        _unavailable("RabbitMQ", AMQP_URL_ENV, url, problem)
    return url


def postgres_url() -> str:
    """Return the PostgreSQL URL of the test database, skipping/failing if unreachable.

    The URL comes from ``BUSLINE_TEST_PG_URL`` (default: the local server that
    ``scripts/services.sh`` runs).  Reachability means: TCP connect works and
    the peer answers an SSLRequest like a PostgreSQL server.  The result is
    cached per process.
    """
    url = os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL
    problem = _postgres_problem(url)
    if problem is not None:
        _unavailable("PostgreSQL", PG_URL_ENV, url, problem)
    return url


def _host_port(url: str, default_port: int) -> tuple[str, int] | None:
    """Host and port of a URL, or None when it names no TCP host (e.g. a Unix socket)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None
    try:
        port = parts.port or default_port
    except ValueError:  # port out of range / not a number
        return None
    return host, port


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read up to ``size`` bytes, stopping early only at EOF."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


@functools.cache
def _amqp_problem(url: str) -> str | None:
    """None when an AMQP broker answers at ``url``, else a short description."""
    address = _host_port(url, 5672)
    if address is None:
        return None  # nothing we can probe; let the client report errors itself
    host, port = address
    try:
        with socket.create_connection(address, timeout=PROBE_TIMEOUT) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            sock.sendall(_AMQP_PROTOCOL_HEADER)
            # Expected: a method frame (type 1) on channel 0 carrying Connection.Start.
            frame = _recv_exactly(sock, 7)
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc}"
    if len(frame) < 7:
        return f"{host}:{port} accepted the connection but closed it without an AMQP greeting"
    if frame.startswith(b"AMQP"):
        return f"{host}:{port} speaks a different AMQP protocol version: {frame!r}"
    if frame[0] != 1:
        return f"{host}:{port} did not answer like an AMQP 0-9-1 broker (got {frame!r})"
    return None


@functools.cache
def _postgres_problem(url: str) -> str | None:
    """None when a PostgreSQL server answers at ``url``, else a short description."""
    address = _host_port(url, 5432)
    if address is None:
        return None
    host, port = address
    try:
        with socket.create_connection(address, timeout=PROBE_TIMEOUT) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            # SSLRequest: any PostgreSQL server answers with one byte, S or N.
            sock.sendall(_PG_SSL_REQUEST)
            answer = _recv_exactly(sock, 1)
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc}"
    if answer not in (b"S", b"N"):
        return f"{host}:{port} did not answer like a PostgreSQL server (got {answer!r})"
    return None


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(name: str, env_var: str, url: str, problem: str) -> NoReturn:
    reason = (
        f"{name} is not reachable at {_redact(url)} ({problem}). "
        f"Start the local test servers with `scripts/services.sh start` "
        f"(or run the suite via `scripts/test`), or point {env_var} at a running server."
    )
    if _in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------
# Controlling the local broker (outage / restart tests)
# --------------------------------------------------------------------------


def _services_env() -> dict[str, str]:
    """Environment for services.sh, aimed at the broker the tests talk to.

    Tests only know the URL; services.sh picks the node by BUSLINE_RABBIT_PORT.
    Refuses when the URL points at a non-local broker, which we cannot control.
    """
    env = dict(os.environ)
    url = env.get(AMQP_URL_ENV) or DEFAULT_AMQP_URL
    address = _host_port(url, 5672)
    if address is None or address[0] not in _LOCAL_HOSTS:
        raise ServicesError(
            f"{AMQP_URL_ENV}={_redact(url)} is not a local broker; only the node run by "
            f"scripts/services.sh can be stopped/restarted by the tests"
        )
    env.setdefault("BUSLINE_RABBIT_PORT", str(address[1]))
    return env


def _services(*args: str, timeout: float = SERVICES_TIMEOUT) -> str:
    """Run ``scripts/services.sh ARGS...``; return its output, raise ServicesError on failure."""
    cmd = ["bash", str(SERVICES_SCRIPT), *args]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=_services_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServicesError(f"`{' '.join(args)}` timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise ServicesError(
            f"scripts/services.sh {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout}"
        )
    return proc.stdout


def restart_rabbitmq(*, fast: bool = False) -> None:
    """Restart the local broker, keeping its data; return once it accepts connections.

    All client connections are dropped (connection.close with CONNECTION_FORCED,
    then TCP close) and the port refuses connections for a few seconds.  Durable
    queues/exchanges and persistent messages survive; transient ones do not.

    ``fast=False`` (default) shuts the whole Erlang node down and boots it again
    (~6 s).  ``fast=True`` only stops/starts the broker application inside the
    running VM (~2 s); clients can't tell the difference.
    """
    _services("restart-rabbitmq", *(["--fast"] if fast else []))


def stop_rabbitmq(*, fast: bool = False) -> None:
    """Stop the local broker (connections dropped, port closed) until :func:`start_rabbitmq`.

    ``fast=True`` keeps the Erlang VM running (only the broker application
    stops), which makes the later start ~1.5 s instead of ~3.5 s.
    """
    _services("stop-rabbitmq", *(["--fast"] if fast else []))


def start_rabbitmq() -> None:
    """Start the local broker again (after either kind of stop); return when ready."""
    _services("start-rabbitmq")


async def arestart_rabbitmq(*, fast: bool = False) -> None:
    """:func:`restart_rabbitmq` in a worker thread, so the event loop keeps running."""
    await asyncio.to_thread(restart_rabbitmq, fast=fast)


async def astop_rabbitmq(*, fast: bool = False) -> None:
    """:func:`stop_rabbitmq` in a worker thread, so the event loop keeps running."""
    await asyncio.to_thread(stop_rabbitmq, fast=fast)


async def astart_rabbitmq() -> None:
    """:func:`start_rabbitmq` in a worker thread, so the event loop keeps running."""
    await asyncio.to_thread(start_rabbitmq)
