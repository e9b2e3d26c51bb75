"""The ``busline`` command line: a small dispatcher to one module per subcommand.

Each subcommand module provides ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status); add a subcommand by adding its module to
:data:`COMMANDS`. Every error is one line on stderr with passwords masked; the exit status is 2
for a usage error and 1 for a command that ran and failed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn, TextIO

from busline.cli.common import FAILURE, USAGE, complain
from busline.cli.targets import TargetError

#: Subcommand name → the module that implements it.
COMMANDS: dict[str, str] = {
    "errors": "busline.cli.errors",
    "outbox": "busline.cli.outbox",
    "sagas": "busline.cli.sagas",
    "run": "busline.cli.run",
    "topology": "busline.cli.topology",
    "map": "busline.cli.map",
    "lint": "busline.cli.lint",
    "asyncapi": "busline.cli.asyncapi",
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one masked line (argparse prints the full usage and
    echoes arguments, URLs with passwords included)."""

    def error(self, message: str) -> NoReturn:
        """Report a usage error and exit with status 2."""
        complain(self.prog, f"{message} (see '{self.prog} --help')")
        self.exit(USAGE)


def _version() -> str:
    try:
        return version("busline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> Parser:
    """The argument parser with every subcommand."""
    parser = Parser(prog="busline", description="Inspect and operate busline services.")
    parser.add_argument("--version", action="version", version=f"busline {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def parse(parser: Parser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, letting positionals follow options.

    argparse fills a ``nargs="*"`` positional from its first run of values only, so in
    ``busline map a:bus --format dot b:bus`` the ``b:bus`` is left over. Subcommands that take
    a list of positionals name it in ``intermixed``; leftovers that are not options go there.
    """
    args, extras = parser.parse_known_args(argv)
    destination = getattr(args, "intermixed", None)
    unknown = [extra for extra in extras if extra.startswith("-") or destination is None]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if destination is not None:
        getattr(args, destination).extend(extras)
    return args


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None) -> int:
    """Run ``busline COMMAND ...``; return the exit status.

    ``stdin`` is where confirmations are read (default: ``sys.stdin``).
    """
    try:
        args = parse(build_parser(), argv)
    except SystemExit as done:  # --help, --version and usage errors end here
        return done.code if isinstance(done.code, int) else USAGE
    args.stdin = sys.stdin if stdin is None else stdin
    if not logging.getLogger().handlers:
        # Failures are reported as one line below; the drivers' own log records would repeat
        # them over several lines through logging's last-resort handler.
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        status: int = args.run(args)
    except TargetError as exc:  # a MODULE:ATTR that names no bus: the command was misused
        complain(f"busline {args.command}", exc)
        return USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Subcommands report the failures they expect; this is the one line for the others.
        complain(f"busline {args.command}", f"{type(exc).__name__}: {exc}")
        return FAILURE
    return status
