"""The lint rules on link models built by hand: where each rule's boundary lies."""

from __future__ import annotations

from busline import Command, Event
from busline.links import Handler, LinkModel, MessageInfo
from busline.lint import check
from busline.messages import MessageKind


class E0(Event): ...


class E1(Event): ...


class E2(Event): ...


class E3(Event): ...


class Again(Command): ...


def model(*handlers: Handler) -> LinkModel:
    types = {t.__name__: t for t in (E0, E1, E2, E3, Again)}
    # Like busline.links.build: only the messages some handler declares.
    named = {n for h in handlers for n in (*h.consumes, *h.sends, *h.publishes, *h.timeouts)}
    messages = {
        name: MessageInfo(name, MessageKind.COMMAND if t is Again else MessageKind.EVENT, t)
        for name, t in sorted(types.items())
        if name in named
    }
    services = tuple(sorted({h.service for h in handlers}))
    return LinkModel(services, messages, tuple(sorted(handlers, key=lambda h: h.node)))


def step(service: str, name: str, consumes: str, publishes: str | None = None) -> Handler:
    return Handler(service, name, False, (consumes,), publishes=(publishes,) if publishes else ())


def rules(link_model: LinkModel) -> list[str]:
    return [f.rule for f in check(link_model, frozenset({"unsubscribed-event"}))]


def test_a_hidden_process_takes_three_event_handler_event_hops():
    two = [step("a", "h1", "E0", "E1"), step("b", "h2", "E1", "E2"), step("c", "h3", "E2")]
    assert rules(model(*two)) == []
    three = [*two[:2], step("c", "h3", "E2", "E3"), step("a", "h4", "E3")]
    (finding,) = check(model(*three), frozenset({"unsubscribed-event"}))
    assert finding.rule == "hidden-process"
    assert finding.link == "E0 -.-> a/h1 -.-> E1 -.-> b/h2 -.-> E2 -.-> c/h3 -.-> E3 -.-> a/h4"


def test_a_saga_on_the_way_owns_the_rest_of_the_chain():
    saga = Handler("b", "process", True, ("E1",), starts=("E1",), publishes=("E2",))
    chain = [step("a", "h1", "E0", "E1"), saga, step("c", "h3", "E2", "E3"), step("a", "h4", "E3")]
    assert rules(model(*chain)) == []


def test_a_handler_commanding_itself_is_a_loop_and_a_saga_timeout_is_not():
    again = Handler("a", "again", False, ("Again",), sends=("Again",))
    assert rules(model(again)) == ["command-loop"]
    timer = Handler("a", "s", True, ("E0", "Again"), starts=("E0",), timeouts=("Again",))
    assert rules(model(timer)) == []


def test_a_saga_that_only_starts_needs_no_deadline():
    starts_only = Handler("a", "s", True, ("E0", "E1"), starts=("E0", "E1"))
    assert rules(model(starts_only)) == []
    waits = Handler("a", "s", True, ("E0", "E1"), starts=("E0",))
    assert rules(model(waits)) == ["saga-without-deadline"]
