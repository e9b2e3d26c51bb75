"""What wraps a workload's measured phase: nothing, or a profiler when the worker profiles."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

#: Wraps the measured phase (the worker passes a profiler when asked to profile).
Probe = Callable[[], AbstractContextManager[Any]]
