"""``busline asyncapi``: an AsyncAPI 3.0 document (JSON) of the buses given.

Servers come from the buses' URLs (or ``--url``), without passwords; channels, operations and
message payload schemas from their declarations. Nothing is started or connected to.
"""

from __future__ import annotations

import argparse
import json

from busline.asyncapi import document
from busline.cli.targets import add_targets, load_all
from busline.links import build

HELP = "write an AsyncAPI 3.0 document of some buses (channels, operations, payload schemas)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``busline asyncapi``'s arguments."""
    add_targets(parser)
    parser.add_argument("--title", help="the document's title (default: the services' names)")
    parser.add_argument(
        "--api-version", default="1.0.0", help="the API's version in info (default: 1.0.0)"
    )
    parser.add_argument(
        "--url", help="the broker URL to list as the server (default: each bus's own URL)"
    )


def run(args: argparse.Namespace) -> int:
    """Print the document; return the exit status."""
    buses = load_all(args.targets)
    urls = {bus.service: args.url or bus.url for bus in buses}
    doc = document(build(buses), urls, title=args.title, version=args.api_version)
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0
