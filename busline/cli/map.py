"""``busline map``: every link between the services given, drawn from their declarations.

Commands are solid arrows (sender → command → owning handler: the sender depends on the
receiver), events dashed (publisher → event → each subscriber: the receiver depends on the
publisher), sagas are the owners of their process. Nothing is started or connected to.
"""

from __future__ import annotations

import argparse

from busline.cli.targets import add_targets, load_all
from busline.linkmap import to_dot, to_json, to_mermaid
from busline.links import build

HELP = "draw every command and event link of some buses (Mermaid, Graphviz DOT or JSON)"

_RENDERERS = {"mermaid": to_mermaid, "dot": to_dot, "json": to_json}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``busline map``'s arguments."""
    add_targets(parser)
    parser.add_argument(
        "--format",
        choices=sorted(_RENDERERS),
        default="mermaid",
        help="output format (default: mermaid); json is sorted, for diffs in CI",
    )


def run(args: argparse.Namespace) -> int:
    """Print the map; return the exit status."""
    model = build(load_all(args.targets))
    print(_RENDERERS[args.format](model), end="")
    return 0
