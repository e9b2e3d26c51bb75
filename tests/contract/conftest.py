"""The contract suite runs on both event loops a service may use: asyncio's own and uvloop
(``busline[uvloop]``), whose transports are not ``asyncio.Transport`` subclasses and whose
callbacks are scheduled differently. Each test's id names its loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test of this directory once per loop."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
