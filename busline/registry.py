"""Declared handlers and subscribers, checked against the bus's rules as they are declared."""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from busline.errors import RegistrationError
from busline.messages import Message, MessageKind, kind_of, wire_name

log = logging.getLogger("busline.registry")

HandlerFunc = Callable[..., Awaitable[None]]


class DeclaredLinks:
    """What declares the commands it sends and the events it publishes (a handler, or the
    service outside its handlers), and checks the messages it emits against that."""

    __slots__ = ()

    sends: tuple[type[Message], ...]
    publishes: tuple[type[Message], ...]
    #: Message types already checked (declared, or warned about once).
    checked: set[type[Message]]

    @property
    def declarer(self) -> str:
        """Who the warning names."""
        raise NotImplementedError

    def check_declared(self, message_type: type[Message], kind: MessageKind) -> None:
        """Log once per type a send or publish the declarations do not list, so that
        ``busline map`` cannot silently drift from the code; :attr:`checked` remembers the type
        either way, so the next send of it skips the check."""
        checked = self.checked
        if message_type in checked:
            return
        checked.add(message_type)
        declared = self.sends if kind is MessageKind.COMMAND else self.publishes
        if message_type in declared:
            return
        verb = "sends" if kind is MessageKind.COMMAND else "publishes"
        log.warning(
            "%s %s %s without declaring it: add %s=[%s] to its declaration so that "
            "'busline map' shows the link",
            self.declarer,
            verb,
            wire_name(message_type),
            verb,
            message_type.__name__,
        )


@dataclass(frozen=True, slots=True)
class HandlerSpec(DeclaredLinks):
    """One handler or subscriber, as the dispatcher needs it."""

    kind: MessageKind
    message_type: type[Message]
    func: HandlerFunc
    #: Stable name: the queue suffix of a subscriber, the ``busline-handler`` error header.
    name: str
    queue: str
    prefetch: int | None
    #: Whether ``func`` takes the :class:`~busline.context.Context` as its second argument.
    wants_context: bool
    #: Per-handler options (e.g. ``retry=``) read by middleware; kept opaque here.
    options: dict[str, Any]
    #: Consume middleware this kind of handler needs, placed just outside the store
    #: transaction (a saga retries its optimistic-concurrency conflicts there).
    stages: tuple[Any, ...] = ()
    #: The commands it declares it sends and the events it publishes (``sends=``,
    #: ``publishes=``): the links ``busline map`` draws.
    sends: tuple[type[Message], ...] = ()
    publishes: tuple[type[Message], ...] = ()
    #: Message types already checked against the declarations (declared, or warned about
    #: once): a send of one of them costs a set lookup.
    checked: set[type[Message]] = field(default_factory=set, compare=False)

    @property
    def declarer(self) -> str:
        """Who the undeclared-link warning names: the handler."""
        return self.name

    @property
    def wire_name(self) -> str:
        """The wire name of the message type this handler consumes."""
        return wire_name(self.message_type)


@dataclass(slots=True)
class ServiceLinks(DeclaredLinks):
    """What a service declares it sends and publishes outside its handlers (``bus.send``,
    ``bus.transaction()``): ``Bus(..., sends=[...], publishes=[...])``."""

    service: str
    sends: tuple[type[Message], ...] = ()
    publishes: tuple[type[Message], ...] = ()
    #: Message types already checked (declared, or warned about once).
    checked: set[type[Message]] = field(default_factory=set)

    @property
    def declarer(self) -> str:
        """Who the undeclared-link warning names: the service."""
        return f"service {self.service!r}"


def message_type_of(func: HandlerFunc, expected: MessageKind) -> type[Message]:
    """Read the message type from ``func``'s first parameter annotation."""
    params = _parameters(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # unresolved forward reference, typically a local class
        raise RegistrationError(
            f"cannot resolve the annotations of {_describe(func)} ({exc}); pass the message "
            f"type explicitly, e.g. @bus.{_decorator(expected)}(MyMessage)"
        ) from exc
    annotation = hints.get(params[0].name)
    if annotation is None:
        raise RegistrationError(
            f"{_describe(func)}: annotate its first parameter with a {_base(expected)} subclass "
            f"(or pass the type: @bus.{_decorator(expected)}(MyMessage))"
        )
    return check_message_type(annotation, expected, func)


def check_message_type(candidate: Any, expected: MessageKind, func: HandlerFunc) -> type[Message]:
    """Ensure ``candidate`` is a concrete message class of kind ``expected``."""
    actual = kind_of(candidate)
    if actual is None:
        raise RegistrationError(
            f"{_describe(func)}: {candidate!r} is not a {_base(expected)} subclass"
        )
    if actual is not expected:
        right = "command_handler" if actual is MessageKind.COMMAND else "event_subscriber"
        raise RegistrationError(
            f"{_describe(func)}: {candidate.__name__} is a {actual.value}, so it needs "
            f"@bus.{right}, not @bus.{_decorator(expected)}"
        )
    message_type: type[Message] = candidate
    return message_type


def wants_context(func: HandlerFunc) -> bool:
    """Whether the handler takes a second (context) parameter."""
    return len(_parameters(func)) >= 2


def _parameters(func: HandlerFunc) -> list[inspect.Parameter]:
    if not inspect.iscoroutinefunction(func):
        raise RegistrationError(f"{_describe(func)} must be an 'async def' function")
    params = list(inspect.signature(func).parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise RegistrationError(
            f"{_describe(func)} must take the message as its first positional parameter"
        )
    if len(params) > 2:
        raise RegistrationError(f"{_describe(func)} must take (message) or (message, ctx)")
    return params


class Registry:
    """The handlers and subscribers of one service."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._commands: dict[str, HandlerSpec] = {}
        self._subscribers: dict[str, HandlerSpec] = {}
        self._types: dict[str, type[Message]] = {}

    @property
    def specs(self) -> list[HandlerSpec]:
        """Every declared handler and subscriber, in declaration order per kind."""
        return [*self._commands.values(), *self._subscribers.values()]

    def add(self, spec: HandlerSpec) -> None:
        """Register ``spec``, enforcing one handler per command and unique subscriber names."""
        self.remember_type(spec.message_type)
        if spec.kind is MessageKind.COMMAND:
            existing = self._commands.get(spec.wire_name)
            if existing is not None:
                raise RegistrationError(
                    f"command {spec.wire_name!r} already has a handler in service "
                    f"{self.service!r} ({_describe(existing.func)}); a command has exactly one "
                    f"handler type. To react in several places, publish an event instead."
                )
            self._commands[spec.wire_name] = spec
        else:
            existing = self._subscribers.get(spec.queue)
            if existing is not None:
                raise RegistrationError(
                    f"subscriber queue {spec.queue!r} is already used by "
                    f"{_describe(existing.func)}; give this subscriber another name=..."
                )
            self._subscribers[spec.queue] = spec

    def remember_type(self, message_type: type[Message]) -> None:
        """Record a wire name, refusing two different classes that claim the same one."""
        name = wire_name(message_type)
        known = self._types.setdefault(name, message_type)
        if known is not message_type:
            raise RegistrationError(
                f"wire name {name!r} is used by both {known.__module__}.{known.__qualname__} and "
                f"{message_type.__module__}.{message_type.__qualname__}; choose distinct "
                f"names with wire_name=..."
            )


def _describe(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _base(kind: MessageKind) -> str:
    return "Command" if kind is MessageKind.COMMAND else "Event"


def _decorator(kind: MessageKind) -> str:
    return "command_handler" if kind is MessageKind.COMMAND else "event_subscriber"


def handler_call(spec: HandlerSpec) -> Callable[[Any], Awaitable[None]]:
    """The innermost layer of the consume chain: call the handler with what it asks for."""
    func = spec.func
    if spec.wants_context:

        async def call_with_context(ctx: Any) -> None:
            await func(ctx.message, ctx)

        return call_with_context

    async def call(ctx: Any) -> None:
        await func(ctx.message)

    return call
