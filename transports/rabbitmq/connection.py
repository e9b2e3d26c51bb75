"""One AMQP connection that keeps itself alive: connect, notice loss, reconnect with backoff.

The rest of the transport never holds on to a connection: it asks :class:`ConnectionManager`
for the current one (waiting for it within a deadline), and is told through two hooks when a
connection is ready (to open channels, declare topology, resume consumers) and when it was lost
(so everything tied to the old one is dropped at once).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

from busline.errors import BuslineError
from busline.urls import mask_url

from . import amqp
from .config import ConnectionConfig

log = logging.getLogger("busline.rabbitmq")

ConnectedHook = Callable[[amqp.Connection], Awaitable[None]]
LostHook = Callable[[], None]


class TransportClosedError(ConnectionError):
    """The transport was closed: no connection will come any more."""


def _is_permanent(exc: BaseException) -> bool:
    """Errors that retrying will not fix: wrong credentials, missing vhost, bad TLS setup, a
    declaration the broker refuses (busline's own errors, e.g. a queue of another type)."""
    return isinstance(
        exc,
        (
            BuslineError,
            amqp.BrokerRefusedError,
            ssl.SSLCertVerificationError,
        ),
    )


class ConnectionManager:
    """Owns the connection and the loop that re-establishes it until :meth:`close`."""

    def __init__(self, config: ConnectionConfig, on_connected: ConnectedHook, on_lost: LostHook):
        self.config = config
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._connection: amqp.Connection | None = None
        self._pending: amqp.Connection | None = None
        # Set whenever a connection becomes usable, or the manager closed (waiters recheck).
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._ever_connected = False
        self._fatal: BaseException | None = None
        self.last_error: BaseException | None = None
        #: Which of the configured nodes to try first (the one that answered last).
        self._node = 0

    @property
    def state(self) -> str:
        """``connected``, ``connecting`` or ``closed`` (for reprs and diagnostics)."""
        if self._closed:
            return "closed"
        return "connected" if self.current is not None else "connecting"

    @property
    def current(self) -> amqp.Connection | None:
        """The usable connection, or ``None`` while (re)connecting."""
        connection = self._connection
        if connection is None or connection.is_closed:
            return None
        return connection

    async def start(self, within: float) -> None:
        """Start the connect loop; return once connected, else raise :class:`ConnectionError`
        (after ``within`` seconds, or at once for a permanent error such as bad credentials)."""
        self._task = asyncio.create_task(self._run(), name=f"busline:amqp:{self.config.masked}")
        waiter = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait(
                {waiter, self._task}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if self.current is not None:
            return
        reason = self._fatal or self.last_error
        await self.close()
        detail = self.config.scrub(_describe(reason)) if reason else "no answer"
        raise ConnectionError(
            f"could not connect to RabbitMQ at {self.config.masked}"
            + ("" if self._fatal else f" within {within:g}s")
            + f": {detail}"
        ) from None

    async def get(self, deadline: float) -> amqp.Connection:
        """The current connection, waiting for a reconnect until ``deadline`` (loop time).

        Raises :class:`TimeoutError` at the deadline and :class:`TransportClosedError` once
        closed.
        """
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise TransportClosedError(
                    f"the RabbitMQ transport for {self.config.masked} is closed"
                )
            connection = self.current
            if connection is not None:
                return connection
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                await self._changed.wait()

    async def close(self) -> None:
        """Stop reconnecting and close the connection."""
        self._closed = True
        self._changed.set()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for connection in (self._connection, self._pending):
            if connection is not None and not connection.is_closed:
                try:
                    await asyncio.wait_for(connection.close(), self.config.connect_timeout)
                except Exception as exc:
                    log.debug("closing %s: %s", self.config.masked, self.config.scrub(repr(exc)))
        self._connection = self._pending = None

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                connection = await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = exc
                if not self._ever_connected and _is_permanent(exc):
                    self._fatal = exc
                    return
                delay = self.config.backoff(attempt)
                attempt += 1
                log.warning(
                    "RabbitMQ at %s unreachable (%s); retrying in %.2fs",
                    self.config.masked,
                    self.config.scrub(_describe(exc)),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            node = mask_url(self.config.urls[self._node])
            if self._ever_connected:
                log.warning("reconnected to RabbitMQ at %s", node)
            else:
                log.info("connected to RabbitMQ at %s", node)
            self._ever_connected = True
            self._connection = connection
            self._changed.set()
            reason = await _wait_closed(connection)
            self._connection = None
            self._on_lost()
            if self._closed:
                return
            log.warning(
                "lost the connection to RabbitMQ at %s (%s); reconnecting",
                mask_url(self.config.urls[self._node]),
                self.config.scrub(_describe(reason)) if reason else "closed",
            )

    async def _connect(self) -> amqp.Connection:
        """A connection to the first node that answers, starting with the one that answered
        last time; the error of the last node when none does (a refusal that retrying cannot
        fix, such as bad credentials, is raised at once)."""
        config = self.config
        nodes = config.urls
        error: Exception | None = None
        for offset in range(len(nodes)):
            index = (self._node + offset) % len(nodes)
            try:
                connection = await amqp.connect(
                    nodes[index],
                    ssl_context=config.ssl_context,
                    properties={"connection_name": config.connection_name},
                    heartbeat=config.heartbeat,
                    connect_timeout=config.connect_timeout,
                    stall_timeout=config.stall_timeout,
                )
            except Exception as exc:
                if _is_permanent(exc) or len(nodes) == 1:
                    raise
                log.info(
                    "RabbitMQ node %s unreachable (%s); trying the next",
                    mask_url(nodes[index]),
                    config.scrub(_describe(exc)),
                )
                error = exc
                continue
            self._node = index
            return connection
        assert error is not None
        raise error

    async def _open(self) -> amqp.Connection:
        config = self.config
        connection = await self._connect()
        self._pending = connection
        try:
            # Channels, topology and consumers come back before anyone sees the connection, so
            # a send after a reconnect never races a half-restored topology.
            async with asyncio.timeout(config.connect_timeout * 3):
                await self._on_connected(connection)
        except BaseException:
            self._on_lost()
            if not connection.is_closed:
                try:
                    await asyncio.wait_for(asyncio.shield(connection.close()), 2)
                except BaseException as exc:  # best effort: we are failing anyway
                    log.debug("closing a failed connection: %r", exc)
            raise
        finally:
            self._pending = None
        return connection


async def _wait_closed(connection: amqp.Connection) -> BaseException | None:
    """Wait until ``connection`` closes; return why (``None`` for a clean close)."""
    return await asyncio.shield(connection.closed)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"
