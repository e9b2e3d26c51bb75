"""What every subcommand shares: secrets kept out of output, one-line errors, confirmations."""

from __future__ import annotations

import re
import sys
from typing import TextIO

from busline.urls import mask_url

#: Anything that looks like a URL with an authority, wherever it appears in a message.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")

#: Exit statuses: the command was misused, or it ran and failed.
USAGE = 2
FAILURE = 1


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL.sub(lambda match: mask_url(match.group(0)), text)


def complain(prog: str, message: object) -> None:
    """Print ``prog: message`` to stderr as one line, passwords masked."""
    one_line = " ".join(str(message).split())
    print(f"{prog}: {mask_secrets(one_line)}", file=sys.stderr)


def confirm(stdin: TextIO, question: str) -> bool:
    """Ask ``question [y/N]`` on stderr (stdout carries only results); true for y or yes."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")
