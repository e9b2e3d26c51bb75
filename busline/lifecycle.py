"""A bus's lifecycle state, shared with the parts that must refuse work outside it."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Literal

from busline.errors import BusNotRunningError

log = logging.getLogger("busline")

State = Literal["new", "starting", "running", "stopping", "stopped"]

#: The state a bus spends its life in (compared by identity on the hot path).
RUNNING: Final[State] = "running"

#: States in which messages may be built and sent.
_OPEN: frozenset[State] = frozenset({"starting", "running", "stopping"})


class Lifecycle:
    """Where a bus is between ``new`` and ``stopped``."""

    __slots__ = ("service", "state")

    def __init__(self, service: str) -> None:
        self.service = service
        self.state: State = "new"

    def check_open(self) -> None:
        """Raise :class:`BusNotRunningError` unless messages may be sent now."""
        if self.state not in _OPEN:
            raise BusNotRunningError(
                f"bus {self.service!r} is {self.state}: use 'async with bus:' or await "
                f"bus.start() before sending"
            )


async def run_until_signalled(service: AbstractAsyncContextManager[Any], name: str) -> None:
    """Enter ``service``, wait for SIGINT or SIGTERM (or cancellation), then leave it: the
    graceful shutdown of ``Bus.run``."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stopping.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        async with service:
            await stopping.wait()
            log.info("%s: signal received, shutting down", name)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
