"""A consumer process for the scenarios that kill it or weigh it: the suite's consumer bus,
run until SIGTERM (or a SIGKILL, which is the point).

    python -m tests.faults.worker AMQP_URL STORE_URL [--delay SECONDS] [--prefetch N]

It prints ``READY`` once consuming and ``DUP`` for every duplicate its inbox absorbed (flushed
at once, so a killed process has told its parent everything up to its death).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from tests.faults.ledger import DUPLICATE_TEXT, consumer_bus


class _Announce(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if DUPLICATE_TEXT in record.getMessage():
            print("DUP", flush=True)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="tests.faults.worker")
    parser.add_argument("url")
    parser.add_argument("store")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--prefetch", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    inbox_log = logging.getLogger("busline.inbox")
    inbox_log.setLevel(logging.INFO)
    inbox_log.addHandler(_Announce())
    inbox_log.propagate = False  # the parent reads stdout; stderr stays for warnings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    bus = consumer_bus(args.url, args.store, delay=args.delay, prefetch=args.prefetch)
    async with bus:
        print("READY", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
