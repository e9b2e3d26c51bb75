"""The servers a run of the suite owns, started once and stopped at the end whatever happens.

Two runs at once (two people's ``scripts/test``) would share the fixed ports and stop each
other's servers, so a run holds an exclusive lock on :data:`LOCK` from start to close: the
second waits for the first.
"""

from __future__ import annotations

import asyncio
import fcntl
import time
from dataclasses import dataclass
from typing import IO

from tests.faults.servers import OwnPostgres, RabbitNode, ServerError

LOCK = "/tmp/busline-faults.lock"
#: How long a run waits for another one to finish.
LOCK_WAIT = 1800.0


@dataclass
class FaultEnv:
    """A RabbitMQ node and a PostgreSQL server of the suite's own (the cluster is started only
    by the scenario that needs it). ``long`` selects the larger counts."""

    rabbit: RabbitNode
    pg: OwnPostgres
    lock: IO[str]
    long: bool = False

    @classmethod
    def open(cls, *, long: bool = False) -> FaultEnv:
        """Take the lock and start both servers; stops what started if something fails."""
        lock = _take_lock()
        rabbit = RabbitNode()
        pg = OwnPostgres()
        try:
            rabbit.start()
            pg.init()
            pg.start()
        except BaseException:
            _close(rabbit, pg, lock)
            raise
        return cls(rabbit, pg, lock, long)

    @classmethod
    async def start(cls, *, long: bool = False) -> FaultEnv:
        """:meth:`open` off the event loop."""
        return await asyncio.to_thread(lambda: cls.open(long=long))

    def shut(self) -> None:
        """Stop both servers, delete the database folder, release the lock."""
        _close(self.rabbit, self.pg, self.lock)

    async def close(self) -> None:
        await asyncio.to_thread(self.shut)

    async def vhost(self) -> str:
        """A fresh vhost on the suite's node."""
        return await asyncio.to_thread(self.rabbit.new_vhost)


def _take_lock() -> IO[str]:
    handle = open(LOCK, "a")  # noqa: SIM115 - held until close, released by closing it
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise ServerError(f"another fault-suite run holds {LOCK}") from None
            time.sleep(1.0)  # another run is using the servers: poll the lock


def _close(rabbit: RabbitNode, pg: OwnPostgres, lock: IO[str]) -> None:
    try:
        pg.close()
    finally:
        try:
            rabbit.stop()
        finally:
            lock.close()
