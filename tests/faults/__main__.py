"""``python -m tests.faults [--long] [--only NAME ...] [--markdown FILE] [--log FILE]``

Starts the suite's own servers (a RabbitMQ node on 5697, a PostgreSQL on 5498, and a
three-node cluster on 5691-5693 for the cluster scenario), runs the scenarios, prints the
report and stops everything it started. Exit status 0 when every check held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

from tests.faults.env import FaultEnv
from tests.faults.report import markdown, print_table
from tests.faults.runner import run_all
from tests.faults.scenarios import SCENARIOS


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/faults", description=__doc__.split("\n\n")[1])
    parser.add_argument("--long", action="store_true", help="the larger counts (~20 minutes)")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--log", type=Path, help="busline's log (default: a temporary file)")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    log_file = args.log or Path(tempfile.mkstemp(prefix="busline-faults-", suffix=".log")[1])
    # busline logs every reconnect and parked message: useful afterwards, noise in the table.
    logging.basicConfig(level=logging.WARNING, filename=log_file, force=True)
    names = args.only or list(SCENARIOS)
    began = time.monotonic()
    print(f"starting the suite's own servers; busline's log: {log_file}", flush=True)
    env = await FaultEnv.start(long=args.long)
    try:
        results = await run_all(env, names, progress=lambda line: print(line, flush=True))
    finally:
        await env.close()
    kind = "long" if args.long else "short"
    title = f"busline fault suite ({kind}, {time.monotonic() - began:.0f} s)"
    print_table(results, title)
    if args.markdown:
        args.markdown.write_text(markdown(results) + "\n")
    return 0 if all(result.ok for result in results) else 1


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_main(_arguments(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
