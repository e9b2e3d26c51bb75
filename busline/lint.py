"""Checking the links of some services against the semantics of commands and events.

Each rule reads the :class:`~busline.links.LinkModel` and reports findings with the link at
fault, the reason and a suggestion. Only ``error`` findings should fail a build: the others
point at designs worth a second look (an event nobody subscribes to yet may be fine).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from busline.links import Handler, LinkModel
from busline.messages import MessageKind

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One problem: which rule, how bad, the link at fault, why, and what to do instead."""

    rule: str
    severity: Severity
    link: str
    reason: str
    suggestion: str


def check(model: LinkModel, ignore: frozenset[str] = frozenset()) -> list[Finding]:
    """Every finding of every rule not in ``ignore``, sorted (most severe first)."""
    found = [f for name, rule in RULES.items() if name not in ignore for f in rule(model)]
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: (order[f.severity], f.rule, f.link))


def _nodes(handlers: Iterable[Handler]) -> str:
    """The handlers' nodes for a finding's link: comma-separated, ``?`` for none (unknown)."""
    return ", ".join(h.node for h in handlers) or "?"


def command_owner(model: LinkModel) -> Iterator[Finding]:
    """A command needs exactly one owning service: none means it waits forever, two means
    competing owners of one decision."""
    for name, info in model.messages.items():
        if info.kind is not MessageKind.COMMAND:
            continue
        owners = sorted({h.service for h in model.receivers(name)})
        senders = _nodes(model.senders(name))
        if not owners:
            yield Finding(
                "command-owner",
                "error",
                f"{senders} --> {name} --> ?",
                f"no service given handles command {name}: it would wait in its queue forever",
                f"add @bus.command_handler for {name} in the service that owns it, or pass "
                f"that service's bus to this command",
            )
        elif len(owners) > 1:
            yield Finding(
                "command-owner",
                "error",
                f"{senders} --> {name} --> {' | '.join(owners)}",
                f"command {name} is handled in {len(owners)} services ({', '.join(owners)}): "
                f"a command has exactly one owner, and these would compete for each message",
                "keep the handler in the owning service; if the others must react, have the "
                "owner publish an event they subscribe to",
            )


#: Words that say someone must act, anywhere in an event's name.
_MUST_ACT = re.compile(r"(ToBe[A-Z]|Requested|Needed|Needs|Required|Requires|Must|Should)")
#: Verbs that, leading a name, make it an order rather than a fact.
_VERBS = frozenset(
    [
        "Add",
        "Approve",
        "Book",
        "Calculate",
        "Cancel",
        "Charge",
        "Check",
        "Compute",
        "Create",
        "Delete",
        "Do",
        "Email",
        "Execute",
        "Generate",
        "Handle",
        "Issue",
        "Make",
        "Notify",
        "Pay",
        "Perform",
        "Prepare",
        "Process",
        "Publish",
        "Refund",
        "Register",
        "Release",
        "Remove",
        "Request",
        "Reserve",
        "Schedule",
        "Send",
        "Set",
        "Ship",
        "Start",
        "Stop",
        "Submit",
        "Update",
        "Validate",
    ]
)
#: Past tenses that do not end in -ed.
_IRREGULAR_PAST = frozenset(
    ["Sent", "Paid", "Done", "Made", "Built", "Set", "Begun", "Taken", "Given", "Shipped"]
)


def _words(name: str) -> list[str]:
    base = name.rsplit(".", 1)[-1]
    base = base.removesuffix("Event") or base
    return re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", base)


def sounds_imperative(name: str) -> bool:
    """Whether an event name reads as an order: ``SendInvoice``, ``InvoiceToBeSent``,
    ``PaymentRequested``, ``CustomerNeedsNotification``; not ``InvoiceSent``."""
    base = name.rsplit(".", 1)[-1]
    if _MUST_ACT.search(base):
        return True
    words = _words(name)
    if not words or words[0] not in _VERBS:
        return False
    last = words[-1]
    # "ReserveStockFailed" states a fact about a past attempt: not an order.
    return len(words) == 1 or not (last.endswith("ed") or last in _IRREGULAR_PAST)


def command_in_disguise(model: LinkModel) -> Iterator[Finding]:
    """An event exactly one service acts on, named as an order, is a command in costume."""
    for name, info in model.messages.items():
        if info.kind is not MessageKind.EVENT:
            continue
        owners = sorted({h.service for h in model.receivers(name)})
        if len(owners) == 1 and sounds_imperative(info.type.__name__):
            publishers = _nodes(model.senders(name))
            receivers = _nodes(model.receivers(name))
            yield Finding(
                "command-in-disguise",
                "warning",
                f"{publishers} -.-> {name} -.-> {receivers}",
                f"event {name} is named as an order and only {owners[0]} acts on it: the "
                f"publisher cares that it happens, so it is a command in disguise",
                f"make it a Command that {owners[0]} handles and send it "
                f"(the sender then depends on {owners[0]}, openly)",
            )


def hidden_process(model: LinkModel) -> Iterator[Finding]:
    """Three or more event → handler → event hops that no saga owns implement a process
    nobody can see or reorder. One finding per first event: its longest chain."""
    longest: dict[str, list[str]] = {}
    for chain in _event_chains(model):
        if len(chain) > len(longest.get(chain[0], ())):
            longest[chain[0]] = chain
    for chain in longest.values():
        hops = len(chain[::2]) - 1  # event → handler → event: one per event after the first
        if hops >= 3:
            yield Finding(
                "hidden-process",
                "warning",
                " -.-> ".join(chain),
                f"{hops} event → handler → event hops in a chain that no saga owns: a business "
                f"process nobody can see, reorder or give a deadline",
                "give the process a home: a saga in the service that owns the outcome, "
                "starting on the first event and commanding each step",
            )


def _event_chains(model: LinkModel) -> list[list[str]]:
    """Maximal paths event, handler, event, handler, ... through plain (non-saga) subscribers;
    a saga on the way owns what follows, so it ends the chain."""
    subscribers = [
        h
        for h in model.handlers
        if not h.saga and h.consumes and model.messages[h.consumes[0]].kind is MessageKind.EVENT
    ]
    # A chain starts at an event no subscriber publishes (a command handler's, a saga's).
    inner = {event for h in subscribers for event in h.publishes}
    chains: list[list[str]] = []

    def walk(event: str, path: list[str]) -> None:
        reacting = [h for h in subscribers if event in h.consumes and h.node not in path]
        if not reacting:
            chains.append(path)
        for handler in reacting:
            following = [e for e in handler.publishes if e not in path]
            if not following:
                chains.append([*path, handler.node])
            for nxt in following:
                walk(nxt, [*path, handler.node, nxt])

    for name, info in model.messages.items():
        if info.kind is MessageKind.EVENT and name not in inner:
            walk(name, [name])
    return sorted(chains)


def saga_without_deadline(model: LinkModel) -> Iterator[Finding]:
    """A saga that waits for a message it did not start on, with no timeout, may wait forever."""
    for saga in (h for h in model.handlers if h.saga):
        waits = [m for m in saga.consumes if m not in saga.starts and m not in saga.timeouts]
        if waits and not saga.timeouts:
            yield Finding(
                "saga-without-deadline",
                "warning",
                f"{' | '.join(waits)} --> {saga.node}",
                f"saga {saga.name} waits for {', '.join(waits)} after it starts, but requests "
                f"no timeout: an instance whose message never comes waits forever",
                "request a timeout (a command the saga handles: ctx.request_timeout(...)) and "
                "declare it in the step's sends=[...] so this check sees it",
            )


def command_loop(model: LinkModel) -> Iterator[Finding]:
    """Commands a service sends to itself in a cycle keep it busy with its own orders."""
    reported: set[frozenset[str]] = set()
    for handler in model.handlers:
        for cycle in _own_cycles(model, handler):
            key = frozenset(cycle)
            if key not in reported:
                reported.add(key)
                yield Finding(
                    "command-loop",
                    "warning",
                    " --> ".join([*cycle, cycle[0]]),
                    f"service {handler.service} sends commands to itself in a loop: each "
                    f"message causes the next, with nothing to stop it",
                    "do the work in one handler, or give the repetition an owner with an end "
                    "(a saga with a counter and a timeout)",
                )


def _own_cycles(model: LinkModel, start: Handler) -> Iterator[list[str]]:
    """Cycles start → command → handler → ... → start within start's service."""

    def walk(handler: Handler, path: list[str]) -> Iterator[list[str]]:
        for command in handler.sends:
            for receiver in model.receivers(command):
                if receiver.service != start.service:
                    continue
                if receiver.node == start.node:
                    yield [*path, command]
                elif receiver.node not in path:
                    yield from walk(receiver, [*path, command, receiver.node])

    yield from walk(start, [start.node])


def unsubscribed_event(model: LinkModel) -> Iterator[Finding]:
    """An event published with no subscriber among the services given."""
    for name, info in model.messages.items():
        if info.kind is MessageKind.EVENT and not model.receivers(name):
            publishers = _nodes(model.senders(name))
            yield Finding(
                "unsubscribed-event",
                "info",
                f"{publishers} -.-> {name} -.-> ?",
                f"no service given subscribes to event {name}",
                "fine if nobody cares yet; otherwise pass the subscriber's bus too",
            )


#: Rule name → rule, in the order they are documented.
RULES: dict[str, Callable[[LinkModel], Iterator[Finding]]] = {
    "command-owner": command_owner,
    "command-in-disguise": command_in_disguise,
    "hidden-process": hidden_process,
    "saga-without-deadline": saga_without_deadline,
    "command-loop": command_loop,
    "unsubscribed-event": unsubscribed_event,
}
