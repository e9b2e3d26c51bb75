"""Test support, none of it a mock (docs/testing.md).

* :class:`VirtualClock`: a real clock whose time moves only when the test advances it;
* :func:`memory_url`: a ``memory://`` URL naming a fresh in-process broker;
* :func:`join`: waits until the buses on such a broker have handled everything;
* :class:`SagaScenario`: one saga driven by messages and virtual time, and what it did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from busline.testing.clock import VirtualClock, VirtualTimer
from busline.testing.join import join, memory_url

if TYPE_CHECKING:
    from busline.testing.saga import SagaScenario, ScenarioStep


def __getattr__(name: str) -> Any:
    # SagaScenario runs a whole bus: loaded on first use, so that importing busline.testing for
    # its clock stays light.
    if name in ("SagaScenario", "ScenarioStep"):
        from busline.testing import saga

        return getattr(saga, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SagaScenario", "ScenarioStep", "VirtualClock", "VirtualTimer", "join", "memory_url"]
