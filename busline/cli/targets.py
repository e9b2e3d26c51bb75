"""Loading the buses a subcommand works on: ``MODULE:ATTR``, a :class:`~busline.Bus` or a
callable that returns one (a factory that reads its settings when called)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from busline.bus import Bus


class TargetError(Exception):
    """A ``MODULE:ATTR`` that names no bus (a usage error: status 2)."""


def add_targets(parser: argparse.ArgumentParser) -> None:
    """Add the ``MODULE:ATTR ...`` positional arguments.

    Targets after an option (``busline map a:bus --format dot b:bus``) are collected by
    :func:`busline.cli.main`, which hands argparse's leftovers to the ``targets`` list.
    """
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="MODULE:ATTR",
        help="a Bus, or a callable returning one, e.g. shop.services:orders",
    )
    parser.set_defaults(intermixed="targets")


def load(target: str) -> Bus:
    """Import ``MODULE:ATTR`` and return its bus (calling ``ATTR`` if it is a factory)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise TargetError(f"{target!r} is not MODULE:ATTR (e.g. myapp.services:orders)")
    # Like `python -m`: the current directory's packages can be named.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import {module_name!r} for {target}: {exc}") from exc
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(found, Bus) and callable(found):
        found = found()
    if not isinstance(found, Bus):
        raise TargetError(f"{target} is a {type(found).__name__}, not a Bus or a bus factory")
    return found


def load_all(targets: list[str]) -> list[Bus]:
    """Every target's bus, refusing none at all and two buses of one service."""
    if not targets:
        raise TargetError("give at least one MODULE:ATTR naming a bus")
    buses = [load(target) for target in targets]
    seen: dict[str, str] = {}
    for target, bus in zip(targets, buses, strict=True):
        if bus.service in seen:
            raise TargetError(
                f"{seen[bus.service]} and {target} are both service {bus.service!r}: "
                f"give each service once"
            )
        seen[bus.service] = target
    return buses
