"""Sagas: a home for every long-running process.

A saga is a local orchestrator that lives in the service accountable for an outcome. It reacts to
events and to time passing, commands each step in the order it controls, and undoes what was done
when a later step fails. Each instance is correlated by a key, persisted in the bus's store and
updated with optimistic concurrency, in the same transaction as the inbox record of the message
that drove the step, the messages the step sends and the timeouts it requests::

    fulfilment = Saga("shop.fulfilment", state=Fulfilment, key="order_id")

    @fulfilment.starts(OrderPlaced)
    async def placed(evt: OrderPlaced, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.send(ReserveStock(...), compensate=ReleaseStock(...))
        await ctx.request_timeout(900, PaymentOverdue(order_id=evt.order_id))

    bus.add_saga(fulfilment)

This module holds the declaration; :mod:`busline.saga_step` runs a step, :mod:`busline.saga_context`
is what a step sees. docs/sagas.md tells the whole story.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec

from busline.errors import RegistrationError
from busline.messages import Message, MessageKind, kind_of, wire_name

NotFound = Literal["ignore", "error"]
#: Correlates a message to an instance: the name of one of its fields, or a function of it.
Correlation = str | Callable[[Any], Any]
SagaFunc = Callable[..., Awaitable[None]]
F = TypeVar("F", bound=SagaFunc)


@dataclass(frozen=True, slots=True)
class SagaHandler:
    """One message type a saga reacts to."""

    message_type: type[Message]
    func: SagaFunc
    #: Whether this message may create the instance (``starts``) or only update one.
    starts: bool
    by: Correlation
    #: Message types this step declares it sends, publishes and requests as timeouts (for
    #: ``busline map``; an undeclared one is logged once when it happens).
    sends: tuple[type[Message], ...] = ()
    publishes: tuple[type[Message], ...] = ()
    timeouts: tuple[type[Message], ...] = ()
    #: Undeclared timeout types already warned about.
    warned: set[type[Message]] = field(default_factory=set, compare=False)

    @property
    def kind(self) -> MessageKind:
        """Command or event: what queue the saga reads it from."""
        kind = kind_of(self.message_type)
        assert kind is not None  # checked when declared
        return kind

    def key_of(self, message: Message) -> str:
        """The correlation key of ``message``, as text."""
        by = self.by
        value = getattr(message, by) if isinstance(by, str) else by(message)
        return str(value)


class Saga:
    """The declaration of a saga.

    Args:
        name: Its stable name: stored with each instance, so renaming the state class or moving
            the module does not orphan them.
        state: The persisted state, a ``msgspec.Struct`` whose fields all have defaults except
            the key field.
        key: The state field that correlates messages; messages are matched on their field of
            the same name unless a handler says ``by=``.
        not_found: What a message that is handled (not a start) does when it finds no running
            instance: ``"ignore"`` (logged and acknowledged, the default) or ``"error"`` (to
            the error queue with the reason, no retries). A timeout that finds none, or finds its
            instance completed, is always dropped silently.
        conflict_retries: How often a step that lost an optimistic-concurrency race (another
            message updated the instance meanwhile) reloads and runs again, separately from the
            handler's retry policy.
    """

    def __init__(
        self,
        name: str,
        *,
        state: type[msgspec.Struct],
        key: str,
        not_found: NotFound = "ignore",
        conflict_retries: int = 10,
    ) -> None:
        if not name or not name.strip() or "/" in name:
            raise RegistrationError(f"a saga needs a non-empty name without '/', got {name!r}")
        if not_found not in ("ignore", "error"):
            raise RegistrationError(f"not_found= takes 'ignore' or 'error', got {not_found!r}")
        if conflict_retries < 0:
            raise RegistrationError("conflict_retries cannot be negative")
        _check_state(name, state, key)
        self.name = name
        self.state_type = state
        self.key = key
        self.not_found: NotFound = not_found
        self.conflict_retries = conflict_retries
        self.handlers: dict[str, SagaHandler] = {}

    def __repr__(self) -> str:
        return f"<Saga {self.name!r} on {self.state_type.__name__}.{self.key}>"

    def starts(
        self,
        message_type: type[Message],
        *,
        by: Correlation | None = None,
        sends: Sequence[type[Message]] = (),
        publishes: Sequence[type[Message]] = (),
        timeouts: Sequence[type[Message]] = (),
    ) -> Callable[[F], F]:
        """Handle ``message_type``, creating the instance from its key when there is none.
        ``sends=``, ``publishes=`` and ``timeouts=`` declare what the step emits."""
        return self._declare(message_type, True, by, (sends, publishes, timeouts))

    def handles(
        self,
        message_type: type[Message],
        *,
        by: Correlation | None = None,
        sends: Sequence[type[Message]] = (),
        publishes: Sequence[type[Message]] = (),
        timeouts: Sequence[type[Message]] = (),
    ) -> Callable[[F], F]:
        """Handle ``message_type`` on an existing, running instance (events, commands, and the
        saga's own timeouts)."""
        return self._declare(message_type, False, by, (sends, publishes, timeouts))

    def _declare(
        self,
        message_type: type[Message],
        starts: bool,
        by: Correlation | None,
        emits: tuple[Sequence[type[Message]], ...],
    ) -> Callable[[F], F]:
        if kind_of(message_type) is None:
            raise RegistrationError(f"saga {self.name!r}: {message_type!r} is not a message type")
        correlation = by if by is not None else self.key
        if isinstance(correlation, str) and correlation not in message_type.__struct_fields__:
            raise RegistrationError(
                f"saga {self.name!r}: {message_type.__name__} has no field {correlation!r} to "
                f"correlate on; name one with by='field' or by=lambda msg: ..."
            )
        name = wire_name(message_type)
        if name in self.handlers:
            raise RegistrationError(f"saga {self.name!r} already handles {name!r}")

        def decorator(func: F) -> F:
            _check_step(self.name, func)
            sends, publishes, timeouts = (tuple(types) for types in emits)
            self.handlers[name] = SagaHandler(
                message_type, func, starts, correlation, sends, publishes, timeouts
            )
            return func

        return decorator

    def new_state(self, key: str, message: Message, handler: SagaHandler) -> msgspec.Struct:
        """The state of a new instance: built from its key alone (the message's own value)."""
        by = handler.by
        value = getattr(message, by) if isinstance(by, str) else key
        return self.state_type(**{self.key: value})


def _check_state(name: str, state: Any, key: str) -> None:
    """The state must be a Struct with the key field, buildable from the key alone."""
    if not (isinstance(state, type) and issubclass(state, msgspec.Struct)):
        raise RegistrationError(f"saga {name!r}: state= takes a msgspec.Struct type, got {state!r}")
    fields = state.__struct_fields__
    if key not in fields:
        raise RegistrationError(f"saga {name!r}: {state.__name__} has no key field {key!r}")
    required = fields[: len(fields) - len(state.__struct_defaults__)]
    missing = [field for field in required if field != key]
    if missing:
        raise RegistrationError(
            f"saga {name!r}: a new instance is built from its key alone, but "
            f"{state.__name__} requires {', '.join(missing)}: give them defaults"
        )


def _check_step(name: str, func: Any) -> None:
    if not inspect.iscoroutinefunction(func):
        raise RegistrationError(f"saga {name!r}: {func!r} must be an 'async def' function")
    if len(inspect.signature(func).parameters) != 3:
        raise RegistrationError(
            f"saga {name!r}: {func.__qualname__} must take (message, state, ctx)"
        )
