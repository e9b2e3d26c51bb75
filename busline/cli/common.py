"""What every subcommand shares: secrets kept out of output, one-line errors, confirmations."""

from __future__ import annotations

import sys
from typing import TextIO

from busline.urls import mask_text

#: Exit statuses: the command was misused, or it ran and failed.
USAGE = 2
FAILURE = 1


def complain(prog: str, message: object) -> None:
    """Print ``prog: message`` to stderr as one line, passwords masked."""
    one_line = " ".join(str(message).split())
    print(f"{prog}: {mask_text(one_line)}", file=sys.stderr)


def confirm(stdin: TextIO, question: str) -> bool:
    """Ask ``question [y/N]`` on stderr (stdout carries only results); true for y or yes."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")
