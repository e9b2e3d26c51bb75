"""Drawing the link model: Mermaid, Graphviz DOT, and a stable JSON form for CI diffs.

Commands are solid arrows (sender → command → owning handler: the sender depends on the
receiver), events dashed (publisher → event → each subscriber: the receiver depends on the
publisher). A saga is one node, the owner of its process: the messages it starts on are labelled
``starts``, its timeouts ``timeout``. Every output is sorted, so the same declarations give the
same bytes and a diff between two commits shows only what changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from busline.links import Handler, LinkModel
from busline.messages import MessageKind

LEGEND = "solid: command (sender depends on receiver); dashed: event (receiver depends on sender)"


def to_json(model: LinkModel) -> str:
    """The model as indented JSON with sorted keys and lists."""
    document: dict[str, Any] = {
        "services": list(model.services),
        "handlers": [_handler_json(h) for h in model.handlers],
        "messages": [
            {
                "name": name,
                "kind": info.kind.value,
                "senders": sorted(h.node for h in model.senders(name)),
                "receivers": sorted(h.node for h in model.receivers(name)),
            }
            for name, info in model.messages.items()
        ],
        "links": [
            {
                "kind": link.kind.value,
                "from": link.sender,
                "message": link.message,
                "to": link.receiver,
                "depends": link.depends,
                "timeout": link.timeout,
            }
            for link in model.links()
        ],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _handler_json(handler: Handler) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "node": handler.node,
        "service": handler.service,
        "name": handler.name,
        "role": "saga" if handler.saga else "handler",
        "consumes": list(handler.consumes),
        "sends": list(handler.sends),
        "publishes": list(handler.publishes),
    }
    if handler.saga:
        shown["starts"] = list(handler.starts)
        shown["timeouts"] = list(handler.timeouts)
    return shown


def _edges(model: LinkModel) -> Iterator[tuple[str, str, bool, str]]:
    """(from, to, solid, label) for every arrow, node ids being ``service/name`` for handlers
    and the wire name for messages."""
    for name, info in model.messages.items():
        solid = info.kind is MessageKind.COMMAND
        for sender in model.senders(name):
            yield sender.node, name, solid, ""
        for handler in model.handlers:
            if name in handler.timeouts:
                yield handler.node, name, True, "timeout"
        for receiver in model.receivers(name):
            yield name, receiver.node, solid, "starts" if name in receiver.starts else ""


def to_mermaid(model: LinkModel) -> str:
    """A Mermaid flowchart: services as subgraphs, sagas as hexagons, commands as
    parallelograms, events as stadiums."""
    ids = _ids(model)
    lines = ["flowchart LR", f"  %% {LEGEND}"]
    for number, service in enumerate(model.services):
        lines.append(f'  subgraph s{number}["{_mermaid_text(service)}"]')
        for handler in model.handlers:
            if handler.service == service:
                label = _mermaid_text(("saga " if handler.saga else "") + handler.name)
                shape = ('{{"', '"}}') if handler.saga else ('["', '"]')
                lines.append(f"    {ids[handler.node]}{shape[0]}{label}{shape[1]}")
        lines.append("  end")
    for name, info in model.messages.items():
        text = _mermaid_text(f"{info.kind.value} {name}")
        shape = ('[/"', '"/]') if info.kind is MessageKind.COMMAND else ('(["', '"])')
        lines.append(f"  {ids[name]}{shape[0]}{text}{shape[1]}")
    for source, target, solid, label in _edges(model):
        arrow = "-->" if solid else "-.->"
        shown = f"|{label}|" if label else ""
        lines.append(f"  {ids[source]} {arrow}{shown} {ids[target]}")
    return "\n".join(lines) + "\n"


def to_dot(model: LinkModel) -> str:
    """A Graphviz digraph: one cluster per service, events dashed."""
    lines = ["digraph busline {", "  rankdir=LR;", f"  // {LEGEND}"]
    for number, service in enumerate(model.services):
        lines.append(f"  subgraph cluster_{number} {{")
        lines.append(f"    label={_quote(service)};")
        for handler in model.handlers:
            if handler.service == service:
                label = ("saga " if handler.saga else "") + handler.name
                shape = "hexagon" if handler.saga else "box"
                lines.append(f"    {_quote(handler.node)} [label={_quote(label)}, shape={shape}];")
        lines.append("  }")
    for name, info in model.messages.items():
        shape = "parallelogram" if info.kind is MessageKind.COMMAND else "ellipse"
        label = f"{info.kind.value} {name}"
        lines.append(f"  {_quote(name)} [label={_quote(label)}, shape={shape}];")
    for source, target, solid, label in _edges(model):
        attributes = [] if solid else ["style=dashed"]
        if label:
            attributes.append(f"label={_quote(label)}")
        shown = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_quote(source)} -> {_quote(target)}{shown};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ids(model: LinkModel) -> dict[str, str]:
    """Short Mermaid ids by position in the sorted model: names may hold any character."""
    ids = {handler.node: f"h{n}" for n, handler in enumerate(model.handlers)}
    ids.update({name: f"m{n}" for n, name in enumerate(model.messages)})
    return ids


def _mermaid_text(text: str) -> str:
    # Inside a quoted Mermaid label only the double quote needs an entity.
    return text.replace('"', "#quot;")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
