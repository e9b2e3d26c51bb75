"""What a channel needs of its connection, as a Protocol: the connection module imports the
channel module, never the other way round."""

from __future__ import annotations

from typing import Any, Protocol

from .protocol import FrameProtocol


class Owner(Protocol):
    """What a channel needs of its connection (a Protocol, so the two modules do not import
    each other)."""

    @property
    def protocol(self) -> FrameProtocol:
        """The socket."""

    @property
    def frame_max(self) -> int:
        """The negotiated largest frame."""

    @property
    def blocked(self) -> bool:
        """Whether the broker holds publishers back."""

    async def wait_unblocked(self) -> None:
        """Until the broker lets publishers go on."""

    def forget(self, channel: Any) -> None:
        """The channel is fully closed."""
