"""A bus's lifecycle state, shared with the parts that must refuse work outside it."""

from __future__ import annotations

from typing import Literal

from busline.errors import BusNotRunningError

State = Literal["new", "starting", "running", "stopping", "stopped"]

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
