"""``busline errors``: list, show, replay and purge the messages in the error queue.

``--url`` (default ``$BUSLINE_URL``) and ``--error-queue`` go before or after the action:
``busline errors --url URL list`` and ``busline errors list --url URL`` are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TextIO

from busline.cli.common import FAILURE, USAGE, complain, confirm
from busline.errorqueue import ErrorQueue, ParkedMessage, open_error_queue
from busline.urls import mask_url

HELP = "list, show, replay and purge the messages in the error queue"
DEFAULT_ERROR_QUEUE = "busline.error"


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS leaves the option out of the namespace when not given, so an action's parser
    # does not overwrite a value given before the action; defaults are applied in run().
    parser.add_argument(
        "--url", default=argparse.SUPPRESS, help="broker URL (default: $BUSLINE_URL)"
    )
    parser.add_argument(
        "--error-queue",
        default=argparse.SUPPRESS,
        help=f"the error queue (default: {DEFAULT_ERROR_QUEUE})",
    )


def add_arguments(errors: argparse.ArgumentParser) -> None:
    """Add the ``errors`` options and actions to its parser."""
    _add_connection_options(errors)
    actions = errors.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="one line per parked message")
    listing.add_argument("--queue", help="only messages that failed in this queue")
    listing.add_argument("--type", dest="message_type", help="only this message type")
    listing.add_argument("--exception", help="only this exception type (short or full name)")
    show = actions.add_parser("show", help="everything about one parked message")
    show.add_argument("message_id", metavar="ID")
    replay = actions.add_parser("replay", help="send messages back to their original queues")
    replay.add_argument("message_ids", nargs="*", metavar="ID")
    replay.add_argument("--all", action="store_true", help="replay every parked message")
    purge = actions.add_parser("purge", help="delete every parked message (asks first)")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for action in (listing, show, replay, purge):
        _add_connection_options(action)


def run(args: argparse.Namespace) -> int:
    """Carry out one ``busline errors`` command; return the exit status."""
    args.url = getattr(args, "url", None) or os.environ.get("BUSLINE_URL")
    args.error_queue = getattr(args, "error_queue", None) or DEFAULT_ERROR_QUEUE
    if not args.url:
        complain("busline errors", "give --url or set BUSLINE_URL")
        return USAGE
    if args.action == "replay" and bool(args.message_ids) == bool(args.all):
        complain("busline errors replay", "give message ids or --all (not both)")
        return USAGE
    if args.action == "purge" and not args.yes and not _is_terminal(args.stdin):
        # Nobody can answer the question: refuse rather than wait for input forever.
        complain(
            "busline errors purge",
            "refusing to purge without confirmation: stdin is not a terminal; pass --yes",
        )
        return USAGE
    return asyncio.run(_run(args, sys.stdout))


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed or not a real file
        return False


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        queue = await open_error_queue(args.url, args.error_queue)
    except (ConnectionError, OSError, ValueError, ImportError) as exc:
        complain("busline errors", exc)
        return FAILURE
    try:
        return await _act(queue, args, out)
    finally:
        await queue.close()


async def _act(queue: ErrorQueue, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "list":
        return await _list(queue, args, out)
    if args.action == "show":
        matching = [m for m in await queue.browse() if m.message_id == args.message_id]
        if not matching:
            complain("busline errors", f"no message {args.message_id}")
            return FAILURE
        out.write(_details(matching[0]))
        return 0
    if args.action == "replay":
        try:
            replayed = await queue.replay(None if args.all else args.message_ids)
        except KeyError as exc:
            complain("busline errors", exc.args[0])
            return FAILURE
        for message_id in replayed:
            out.write(f"replayed {message_id}\n")
        out.write(f"{len(replayed)} message(s) replayed\n")
        return 0
    return await _purge(queue, args, out)


async def _list(queue: ErrorQueue, args: argparse.Namespace, out: TextIO) -> int:
    parked = [
        m for m in await queue.browse() if m.matches(args.queue, args.message_type, args.exception)
    ]
    for message in parked:
        out.write(_line(message) + "\n")
    # The count goes to stderr so stdout stays exactly one line per parked message.
    print(f"{len(parked)} message(s)", file=sys.stderr)
    return 0


async def _purge(queue: ErrorQueue, args: argparse.Namespace, out: TextIO) -> int:
    if not args.yes:
        count = len(await queue.browse())
        question = (
            f"delete {count} parked message(s) from {args.error_queue} at {mask_url(args.url)}?"
        )
        if count and not confirm(args.stdin, question):
            complain("busline errors purge", "not confirmed; nothing purged")
            return FAILURE
    purged = await queue.purge()
    out.write(f"{purged} message(s) purged\n")
    return 0


def _line(message: ParkedMessage) -> str:
    return (
        f"{message.message_id}  {message.message_type}  {message.exception_type}  "
        f"queue={message.original_queue}  attempts={message.attempts}  "
        f"failed_at={message.failed_at}"
    )


def _details(message: ParkedMessage) -> str:
    lines = [
        f"message id:     {message.message_id}",
        f"type:           {message.message_type}",
        f"reason:         {message.reason}",
        f"exception:      {message.exception_type}: {message.exception_message}",
        f"original queue: {message.original_queue}",
        f"handler:        {message.service}/{message.handler}",
        f"attempts:       {message.attempts}",
        f"failed at:      {message.failed_at}",
        "headers:",
        *(
            f"  {k}: {v}"
            for k, v in sorted(message.headers.items())
            if k != "busline-error-traceback"
        ),
        "body:",
        "  " + message.body.decode("utf-8", errors="replace"),
    ]
    if message.traceback:
        lines += ["traceback:", message.traceback]
    return "\n".join(lines) + "\n"
