"""``busline errors``: list, show, replay and purge the messages in the error queue."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TextIO

from busline.errorqueue import ErrorQueue, ParkedMessage, open_error_queue

HELP = "list, show, replay and purge the messages in the error queue"


def add_arguments(errors: argparse.ArgumentParser) -> None:
    """Add the ``errors`` options and subcommands to its parser."""
    errors.add_argument(
        "--url",
        default=os.environ.get("BUSLINE_URL"),
        help="broker URL (default: $BUSLINE_URL)",
    )
    errors.add_argument(
        "--error-queue", default="busline.error", help="the error queue (default: busline.error)"
    )
    actions = errors.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per parked message")
    listing.add_argument("--queue", help="only messages that failed in this queue")
    listing.add_argument("--type", dest="message_type", help="only this message type")
    listing.add_argument("--exception", help="only this exception type (short or full name)")
    show = actions.add_parser("show", help="everything about one parked message")
    show.add_argument("message_id")
    replay = actions.add_parser("replay", help="send messages back to their original queues")
    replay.add_argument("message_ids", nargs="*", metavar="ID")
    replay.add_argument("--all", action="store_true", help="replay every parked message")
    actions.add_parser("purge", help="delete every parked message")


def run(args: argparse.Namespace) -> int:
    """Carry out one ``busline errors`` command; return the exit status."""
    if not args.url:
        print("busline errors: give --url or set BUSLINE_URL", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, sys.stdout))


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        queue = await open_error_queue(args.url, args.error_queue)
    except (ConnectionError, ValueError) as exc:
        print(f"busline errors: {exc}", file=sys.stderr)
        return 1
    try:
        return await _act(queue, args, out)
    finally:
        await queue.close()


async def _act(queue: ErrorQueue, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "list":
        parked = [
            m
            for m in await queue.browse()
            if m.matches(args.queue, args.message_type, args.exception)
        ]
        for message in parked:
            out.write(_line(message) + "\n")
        # The count goes to stderr so stdout stays exactly one line per parked message.
        print(f"{len(parked)} message(s)", file=sys.stderr)
        return 0
    if args.action == "show":
        matching = [m for m in await queue.browse() if m.message_id == args.message_id]
        if not matching:
            print(f"busline errors: no message {args.message_id}", file=sys.stderr)
            return 1
        out.write(_details(matching[0]))
        return 0
    if args.action == "replay":
        if bool(args.message_ids) == bool(args.all):
            print("busline errors replay: give message ids or --all (not both)", file=sys.stderr)
            return 2
        try:
            replayed = await queue.replay(None if args.all else args.message_ids)
        except KeyError as exc:
            print(f"busline errors: {exc.args[0]}", file=sys.stderr)
            return 1
        for message_id in replayed:
            out.write(f"replayed {message_id}\n")
        out.write(f"{len(replayed)} message(s) replayed\n")
        return 0
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
