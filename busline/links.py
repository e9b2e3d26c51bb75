"""The link model: every declared link between services, read from their declarations alone.

A *link* is one message between a sender and a receiver. For a command the sender depends on the
receiver (it wants the outcome and names the owner); for an event the receiver depends on the
sender (it reacts to a fact the sender would state anyway). busline knows both ends because
handlers and saga steps declare what they consume (their decorator), and what they send and
publish (``sends=[...]``, ``publishes=[...]``).

This module is pure: it takes the declarations of each service (anything shaped like a bus:
``service``, ``registry.specs`` and ``sagas``) and never imports :mod:`busline.bus`, so the
drawing (:mod:`busline.linkmap`), the checks (:mod:`busline.lint`) and the AsyncAPI document
(:mod:`busline.asyncapi`) work on buses that were never started.

A saga's *timeouts* are the commands its steps declare with ``timeouts=[...]`` (what they ask
for with ``ctx.request_timeout``), and the commands it handles and also lists in a step's
``sends=`` (a command it sends itself): that is how a map shows the saga's deadlines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from busline.messages import Message, MessageKind, kind_of, wire_name
from busline.registry import HandlerSpec, ServiceLinks
from busline.saga import Saga


class SpecSource(Protocol):
    """Where a service's handler declarations are (a :class:`~busline.registry.Registry`)."""

    @property
    def specs(self) -> list[HandlerSpec]:
        """Every declared handler and subscriber."""


class DeclaredService(Protocol):
    """What the link model reads of a bus."""

    @property
    def service(self) -> str:
        """The service's name."""

    @property
    def registry(self) -> SpecSource:
        """Its handlers and subscribers (saga steps included)."""

    @property
    def sagas(self) -> Sequence[Saga]:
        """The sagas it runs."""

    @property
    def links(self) -> ServiceLinks:
        """What it sends and publishes outside its handlers (``Bus(sends=, publishes=)``)."""


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One message type that appears in some declaration."""

    name: str
    kind: MessageKind
    type: type[Message]


@dataclass(frozen=True, slots=True)
class Handler:
    """A handler, subscriber, or saga (one node per saga: the process owner).

    ``node`` (``service/name``) identifies it in every output. For a saga, ``consumes`` is every
    message it handles and ``starts`` those that may create an instance.
    """

    service: str
    name: str
    saga: bool
    consumes: tuple[str, ...]
    starts: tuple[str, ...] = ()
    sends: tuple[str, ...] = ()
    publishes: tuple[str, ...] = ()
    timeouts: tuple[str, ...] = ()

    @property
    def node(self) -> str:
        """Its identity: ``service/name``."""
        return f"{self.service}/{self.name}"


@dataclass(frozen=True, slots=True)
class Link:
    """One message from a sender to a receiver (either end may be unknown: ``None``)."""

    kind: MessageKind
    sender: str | None
    message: str
    receiver: str | None
    #: A saga's timeout: a command it sends to itself, later.
    timeout: bool = False

    @property
    def depends(self) -> str:
        """Which side carries the coupling."""
        if self.timeout:
            return "none: the saga's own deadline"
        if self.kind is MessageKind.COMMAND:
            return "sender depends on receiver"
        return "receiver depends on sender"


@dataclass(frozen=True, slots=True)
class LinkModel:
    """Every handler, saga and message of some services, sorted so outputs are stable."""

    services: tuple[str, ...]
    messages: dict[str, MessageInfo]
    handlers: tuple[Handler, ...]

    def receivers(self, message: str) -> list[Handler]:
        """The handlers and sagas that consume ``message``."""
        return [h for h in self.handlers if message in h.consumes]

    def senders(self, message: str) -> list[Handler]:
        """The handlers and sagas that declare they send or publish ``message`` (timeouts not
        included: a saga's timeout is not a link to another party)."""
        return [h for h in self.handlers if message in h.sends or message in h.publishes]

    def links(self) -> list[Link]:
        """Every sender → message → receiver, with ``None`` where a side is unknown, and each
        saga's timeouts (from the saga to itself)."""
        found: list[Link] = []
        for name, info in sorted(self.messages.items()):
            timers = [h.node for h in self.handlers if name in h.timeouts]
            found.extend(Link(info.kind, node, name, node, timeout=True) for node in timers)
            senders: list[str | None] = [h.node for h in self.senders(name)]
            if timers and not senders:
                continue  # only ever a timeout: no other sender to draw
            senders = senders or [None]
            receivers: list[str | None] = [h.node for h in self.receivers(name)] or [None]
            for sender in senders:
                for receiver in receivers:
                    found.append(Link(info.kind, sender, name, receiver))
        return found


def build(services: Iterable[DeclaredService]) -> LinkModel:
    """The link model of ``services`` (each a bus, or anything with the same declarations)."""
    handlers: list[Handler] = []
    messages: dict[str, MessageInfo] = {}
    names: list[str] = []
    for service in services:
        names.append(service.service)
        steps = _saga_steps(service.sagas)
        for spec in service.registry.specs:
            _remember(messages, [spec.message_type, *spec.sends, *spec.publishes])
            if (spec.wire_name, spec.name) not in steps:
                handlers.append(_plain(service.service, spec))
        for saga in service.sagas:
            handlers.append(_saga(service.service, saga, messages))
        outside = service.links
        if outside.sends or outside.publishes:
            _remember(messages, [*outside.sends, *outside.publishes])
            handlers.append(_outside(service.service, outside))
    handlers.sort(key=lambda h: h.node)
    return LinkModel(tuple(sorted(set(names))), dict(sorted(messages.items())), tuple(handlers))


def _saga_steps(sagas: Sequence[Saga]) -> set[tuple[str, str]]:
    """(message, spec name) of the specs a bus registered for its sagas' steps: they are drawn
    as the saga, not as handlers of their own."""
    return {
        (message, f"{saga.name}.{handler.func.__name__}")
        for saga in sagas
        for message, handler in saga.handlers.items()
    }


def _outside(service: str, links: ServiceLinks) -> Handler:
    """The service itself as a sender: what it sends outside handlers (an HTTP endpoint's
    ``bus.transaction()``, a script's ``bus.send``), drawn as the node ``service/bus``."""
    return Handler(
        service=service,
        name="bus",
        saga=False,
        consumes=(),
        sends=_names(links.sends),
        publishes=_names(links.publishes),
    )


def _plain(service: str, spec: HandlerSpec) -> Handler:
    return Handler(
        service=service,
        name=spec.name,
        saga=False,
        consumes=(spec.wire_name,),
        sends=_names(spec.sends),
        publishes=_names(spec.publishes),
    )


def _saga(service: str, saga: Saga, messages: dict[str, MessageInfo]) -> Handler:
    """One node for the whole saga: what it starts on, handles, sends, publishes, times out."""
    consumes = set(saga.handlers)
    sends: set[str] = set()
    publishes: set[str] = set()
    declared_timeouts: set[str] = set()
    for handler in saga.handlers.values():
        _remember(messages, [handler.message_type, *handler.sends, *handler.publishes])
        sends.update(_names(handler.sends))
        publishes.update(_names(handler.publishes))
        declared_timeouts.update(_names(handler.timeouts))
    timeouts = declared_timeouts | {name for name in sends if name in consumes}
    return Handler(
        service=service,
        name=saga.name,
        saga=True,
        consumes=tuple(sorted(consumes)),
        starts=tuple(sorted(n for n, h in saga.handlers.items() if h.starts)),
        sends=tuple(sorted(sends - timeouts)),
        publishes=tuple(sorted(publishes)),
        timeouts=tuple(sorted(timeouts)),
    )


def _names(types: Iterable[type[Message]]) -> tuple[str, ...]:
    return tuple(sorted({wire_name(t) for t in types}))


def _remember(messages: dict[str, MessageInfo], types: Iterable[type[Message]]) -> None:
    for message_type in types:
        kind = kind_of(message_type)
        if kind is not None:  # declarations were checked; this keeps the type checker honest
            messages.setdefault(
                wire_name(message_type), MessageInfo(wire_name(message_type), kind, message_type)
            )
