"""A loopback TCP proxy between busline and a broker, to cut or stall the connections.

``cut()`` aborts every connection (both ends see a reset at once), like a firewall dropping
state. ``stall()`` stops forwarding on every open connection without closing it, in both
directions, like a peer that hangs or a network path that blackholes: nothing arrives, nothing
fails. Connections made afterwards are forwarded normally, so a client that notices the stall
and reconnects gets through. ``accepted`` keeps the time of each new connection, which is how
the suite sees when busline gave up on a stalled one.

(The idea is the one of tests/rabbitmq/amqp/proxy.py, kept separate and frame-agnostic here:
the fault suite forwards bytes and never parses them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        #: monotonic times of accepted connections
        self.accepted: list[float] = []
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, broker_url: str) -> str:
        """``broker_url`` (on the target port) pointed at the proxy instead."""
        return broker_url.replace(f":{self.target_port}/", f":{self.port}/", 1)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.append(link)
        link.tasks = [
            asyncio.create_task(link.pump(reader, up_writer)),
            asyncio.create_task(link.pump(up_reader, writer)),
        ]

    def cut(self) -> int:
        """Reset every open connection; returns how many there were."""
        links, self._links = self._links, []
        for link in links:
            link.close()
        return len(links)

    def stall(self) -> int:
        """Stop forwarding on every open connection, leaving it open; returns how many."""
        for link in self._links:
            link.stalled = True
        return len(self._links)

    def accepted_since(self, moment: float) -> list[float]:
        """Times of the connections accepted after ``moment``."""
        return [t for t in self.accepted if t > moment]

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


class _Link:
    """One proxied connection: the client's socket and the broker's."""

    def __init__(self, client: asyncio.StreamWriter, broker: asyncio.StreamWriter) -> None:
        self.client = client
        self.broker = broker
        self.stalled = False
        self.tasks: list[asyncio.Task[None]] = []

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy bytes from ``reader`` to ``writer`` until either side goes or the link stalls.

        A stalled pump stops reading: the kernel buffers fill and the sender's writes block,
        exactly what a hung peer looks like. Only :meth:`close` ends it then.
        """
        try:
            while not self.stalled:
                data = await reader.read(65536)
                if not data or self.stalled:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            self.close()
            return
        if not self.stalled:
            self.close()  # one side closed: close the other like a real path would

    def close(self) -> None:
        for writer in (self.client, self.broker):
            if not writer.transport.is_closing():
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()
