"""A TCP proxy between the client and the broker that a test can misbehave with: freeze the
broker's side (a stalled peer), drop every socket (a reset), inject frames towards the client
(``Connection.Blocked``, ``Channel.Flow``) and drop frames towards the broker (the client's
replies to frames the broker never sent). Optionally it terminates TLS for the client.

Frames from the broker are forwarded whole, so an injected frame never lands inside another.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import Callable

_HEAD = struct.Struct(">BHI")
_HEADER = b"AMQP\x00\x00\x09\x01"


class Proxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``target``."""

    def __init__(self, target_host: str, target_port: int, tls: ssl.SSLContext | None = None):
        self._target = (target_host, target_port)
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._pairs: list[_Pair] = []
        self._thawed = asyncio.Event()
        self._thawed.set()
        #: Frames (type, channel, payload) from the client for which this returns True are
        #: not forwarded to the broker.
        self.drop_to_broker: Callable[[int, int, bytes], bool] = lambda *_: False
        self.port = 0

    @property
    def frozen(self) -> bool:
        """While True, nothing from the broker reaches the client (a stalled peer)."""
        return not self._thawed.is_set()

    @frozen.setter
    def frozen(self, value: bool) -> None:
        if value:
            self._thawed.clear()
        else:
            self._thawed.set()

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, vhost_url: str, scheme: str = "amqp") -> str:
        """``vhost_url`` pointed at this proxy."""
        rest = vhost_url.split("@", 1)[1].split("/", 1)[1]
        creds = vhost_url.split("://", 1)[1].split("@", 1)[0]
        return f"{scheme}://{creds}@127.0.0.1:{self.port}/{rest}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        pair = _Pair(self, writer, up_writer)
        self._pairs.append(pair)
        pair.tasks = [
            asyncio.create_task(pair.pump(reader, up_writer, to_client=False)),
            asyncio.create_task(pair.pump(up_reader, writer, to_client=True)),
        ]

    def inject(self, frame: bytes) -> None:
        """Send ``frame`` to every client, between two whole frames of the broker's."""
        for pair in self._pairs:
            pair.client.write(frame)

    def reset(self) -> None:
        """Drop every connection at once (both sides see a reset)."""
        for pair in self._pairs:
            pair.close()
        self._pairs.clear()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        self.reset()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


class _Pair:
    def __init__(self, proxy: Proxy, client: asyncio.StreamWriter, broker: asyncio.StreamWriter):
        self.proxy = proxy
        self.client = client
        self.broker = broker
        self.tasks: list[asyncio.Task[None]] = []

    async def pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to_client: bool
    ) -> None:
        try:
            if not to_client:
                writer.write(await reader.readexactly(len(_HEADER)))
            while True:
                head = await reader.readexactly(_HEAD.size)
                kind, channel, size = _HEAD.unpack(head)
                rest = await reader.readexactly(size + 1)
                if to_client:
                    await self.proxy._thawed.wait()
                if not to_client and self.proxy.drop_to_broker(kind, channel, rest[:-1]):
                    continue
                writer.write(head + rest)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        for writer in (self.client, self.broker):
            transport = writer.transport
            if not transport.is_closing():
                transport.abort()
