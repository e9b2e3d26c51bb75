"""Declaring handlers: the ``@bus.command_handler`` and ``@bus.event_subscriber`` decorators.

Kept apart from :mod:`busline.bus` so the bus module stays about running, this one about the
rules a declaration must follow (checked when it is made, not when a message arrives).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from busline.errors import RegistrationError
from busline.messages import Message, MessageKind, kind_of
from busline.middleware import OptionCheck
from busline.registry import (
    HandlerFunc,
    HandlerSpec,
    Registry,
    check_message_type,
    message_type_of,
    wants_context,
)

F = TypeVar("F", bound=HandlerFunc)


class HandlerDeclarations:
    """The decorators of :class:`~busline.Bus`; a bus provides ``service``, ``registry``,
    ``state`` and ``handler_options`` (what its middleware understands)."""

    service: str
    registry: Registry
    handler_options: Mapping[str, OptionCheck]

    @overload
    def command_handler(self, target: F, /) -> F: ...
    @overload
    def command_handler(
        self,
        target: type[Message] | None = None,
        /,
        *,
        prefetch: int | None = None,
        sends: Sequence[type[Message]] = (),
        publishes: Sequence[type[Message]] = (),
        **options: Any,
    ) -> Callable[[F], F]: ...
    def command_handler(
        self,
        target: Any = None,
        /,
        *,
        prefetch: int | None = None,
        sends: Sequence[type[Message]] = (),
        publishes: Sequence[type[Message]] = (),
        **options: Any,
    ) -> Any:
        """Declare the handler of a command type (exactly one per service).

        Use bare (``@bus.command_handler``, type from the first parameter's annotation) or
        with the type and options (``@bus.command_handler(PlaceOrder, prefetch=8)``).
        ``sends=[...]`` and ``publishes=[...]`` declare the commands and events it emits: the
        links ``busline map`` draws (an undeclared one is logged once when it happens).
        """
        links = check_links(sends, publishes)
        return self._declare(MessageKind.COMMAND, target, None, prefetch, options, links)

    @overload
    def event_subscriber(self, target: F, /) -> F: ...
    @overload
    def event_subscriber(
        self,
        target: type[Message] | None = None,
        /,
        *,
        name: str | None = None,
        prefetch: int | None = None,
        sends: Sequence[type[Message]] = (),
        publishes: Sequence[type[Message]] = (),
        **options: Any,
    ) -> Callable[[F], F]: ...
    def event_subscriber(
        self,
        target: Any = None,
        /,
        *,
        name: str | None = None,
        prefetch: int | None = None,
        sends: Sequence[type[Message]] = (),
        publishes: Sequence[type[Message]] = (),
        **options: Any,
    ) -> Any:
        """Subscribe to an event type; each subscriber gets its own copy in its own queue.

        The queue is ``{service}.{name}``, where ``name`` defaults to the function's name;
        instances of one service share (compete on) it. ``sends=``/``publishes=`` as for
        :meth:`command_handler`.
        """
        links = check_links(sends, publishes)
        return self._declare(MessageKind.EVENT, target, name, prefetch, options, links)

    def _declare(
        self,
        kind: MessageKind,
        target: Any,
        name: str | None,
        prefetch: int | None,
        options: dict[str, Any],
        links: Links,
    ) -> Any:
        if prefetch is not None and prefetch < 1:
            raise RegistrationError("prefetch must be at least 1")
        self._check_options(options)
        if callable(target) and kind_of(target) is None and not isinstance(target, type):
            self._register(kind, target, None, name, prefetch, options, links)
            return target
        explicit = target

        def decorator(func: F) -> F:
            self._register(kind, func, explicit, name, prefetch, options, links)
            return func

        return decorator

    @property
    def state(self) -> str:
        """The bus's lifecycle state (handlers are declared while it is ``new``)."""
        raise NotImplementedError

    def _check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse options no middleware of this bus understands, and values they refuse."""
        for name, value in options.items():
            check = self.handler_options.get(name)
            if check is None:
                valid = ", ".join(["prefetch", *sorted(self.handler_options)])
                raise RegistrationError(
                    f"unknown handler option {name}={value!r}; the options this bus "
                    f"understands are: {valid} (and name= for event subscribers)"
                )
            problem = None if value is None else check(value)
            if problem is not None:
                raise RegistrationError(problem)

    def _register(
        self,
        kind: MessageKind,
        func: HandlerFunc,
        explicit: Any,
        name: str | None,
        prefetch: int | None,
        options: dict[str, Any],
        links: Links,
    ) -> None:
        if self.state != "new":
            raise RegistrationError("declare handlers before the bus starts")
        message_type = (
            message_type_of(func, kind)
            if explicit is None
            else check_message_type(explicit, kind, func)
        )
        handler_name = name or func.__name__
        queue = message_type.__wire_name__
        if kind is MessageKind.EVENT:
            queue = f"{self.service}.{handler_name}"
        self.registry.add(
            HandlerSpec(
                kind=kind,
                message_type=message_type,
                func=func,
                name=handler_name,
                queue=queue,
                prefetch=prefetch,
                wants_context=wants_context(func),  # also validates the signature
                options=dict(options),
                sends=links[0],
                publishes=links[1],
            )
        )


Links = tuple[tuple[type[Message], ...], tuple[type[Message], ...]]


def check_links(sends: Sequence[Any], publishes: Sequence[Any]) -> Links:
    """Check declared links: ``sends`` takes commands, ``publishes`` events."""
    for declared, kind, option in (
        (sends, MessageKind.COMMAND, "sends"),
        (publishes, MessageKind.EVENT, "publishes"),
    ):
        for message_type in declared:
            if kind_of(message_type) is not kind:
                shown = getattr(message_type, "__name__", repr(message_type))
                raise RegistrationError(f"{option}= lists {kind.value}s; {shown} is not one")
    return tuple(sends), tuple(publishes)
