"""busline on the in-process memory transport: the whole stack (envelope, codec, middleware,
dispatch, settle) without a broker, so it shows busline's own per-message cost."""

from __future__ import annotations

from benchmarks.spec import Topology
from benchmarks.systems.busline_common import BuslineSystem
from busline.testing import memory_url


class BuslineMemory(BuslineSystem):
    """busline with a fresh ``memory://`` broker per run."""

    def url_for(self, topology: Topology) -> str:
        """A private in-process broker, whatever the suite's AMQP URL is."""
        return memory_url("bench")
