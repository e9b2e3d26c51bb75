"""What a service does as its bus starts and stops: ``@bus.on_start`` and ``@bus.on_stop``.

A start hook runs once the bus is connected and its store is open, before any consumer starts:
it can create the service's tables or seed data (``bus.transaction()``, ``bus.send`` and
``bus.publish`` work), and no handler sees a message before it is done. A stop hook runs once
the consumers have finished their messages, before the store and the connection close, so it
can still write and send.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from busline.errors import RegistrationError
from busline.lifecycle import Lifecycle

log = logging.getLogger("busline")

#: A start or stop hook: a function without arguments, ``async`` or not.
Hook = Callable[[], Awaitable[None] | None]
H = TypeVar("H", bound=Hook)


class Hooks:
    """A bus's start and stop hooks, and whether the start hooks all ran."""

    __slots__ = ("on_start", "on_stop", "started")

    def __init__(self) -> None:
        self.on_start: list[Hook] = []
        self.on_stop: list[Hook] = []
        #: Every start hook ran: the stop hooks run when the bus stops.
        self.started = False

    async def run_start(self, service: str) -> None:
        """Run the start hooks in the order they were added; the first that raises stops the
        others and its error goes on (the bus then does not start)."""
        for hook in self.on_start:
            try:
                await _call(hook)
            except Exception:
                log.error("bus %s: start hook %s failed", service, _name(hook))
                raise
        self.started = True

    async def run_stop(self, service: str) -> None:
        """Run the stop hooks, last added first, if the start hooks all ran; an error is
        logged and the next hook still runs (a stop always completes)."""
        if not self.started:
            return
        self.started = False
        for hook in reversed(self.on_stop):
            try:
                await _call(hook)
            except Exception:
                log.exception("bus %s: stop hook %s failed", service, _name(hook))


class HookDeclarations:
    """The ``on_start``/``on_stop`` decorators of :class:`~busline.Bus`."""

    _hooks: Hooks
    _lifecycle: Lifecycle

    def on_start(self, hook: H) -> H:
        """Run ``hook`` (a function without arguments, ``async`` or not) as the bus starts:
        connected and with its store open, before any handler receives a message. Create
        tables, seed data, warm caches there. Hooks run in the order added; if one raises,
        ``start()`` closes what it opened and raises that error. Use as a decorator
        (``@bus.on_start``) or call it; add hooks before the bus starts."""
        self._add_hook(self._hooks.on_start, hook, "on_start")
        return hook

    def on_stop(self, hook: H) -> H:
        """Run ``hook`` as the bus stops: after its handlers have finished their messages,
        while the store and the broker connection are still open. Hooks run last added first,
        only if the bus had started; an error is logged, and the stop goes on."""
        self._add_hook(self._hooks.on_stop, hook, "on_stop")
        return hook

    def _add_hook(self, hooks: list[Hook], hook: Hook, kind: str) -> None:
        if not callable(hook):
            raise TypeError(f"bus.{kind} takes a function, not {type(hook).__name__}")
        if self._lifecycle.state != "new":
            raise RegistrationError(
                f"bus {self._lifecycle.service!r} is {self._lifecycle.state}: add {kind} hooks "
                f"before it starts"
            )
        hooks.append(hook)


async def _call(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


def _name(hook: Hook) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)
