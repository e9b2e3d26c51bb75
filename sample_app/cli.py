"""``python -m sample_app``: the command line of the sample shop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import uuid
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from rich.console import Console

from busline.urls import mask_url
from sample_app.config import ShopConfig
from sample_app.faults import DuplicateCounter, Faults
from sample_app.storage import SERVICES, is_postgres

BROKER_SCHEMES = ("memory", "amqp", "amqps")


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one clear line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` alone and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; give 0 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _service_value(kind: str, check: object) -> object:
    def parse(text: str) -> tuple[str, float]:
        name, sep, value = text.partition("=")
        if not sep or name not in SERVICES:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected SERVICE={kind} with SERVICE one of {', '.join(SERVICES)}"
            )
        return name, check(value)  # type: ignore[operator]

    return parse


def _broker(url: str) -> str:
    if urlsplit(url).scheme not in BROKER_SCHEMES:
        raise argparse.ArgumentTypeError(
            f"{mask_url(url)!r}: unknown scheme; use memory://, amqp:// or amqps://"
        )
    return url


def _store(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in ("", "sqlite", "postgresql", "postgres"):
        raise argparse.ArgumentTypeError(
            f"{mask_url(url)!r}: unknown scheme; use a folder, sqlite:///folder or postgresql://"
        )
    return url


def parser() -> Parser:
    """The argument parser."""
    p = Parser(prog="python -m sample_app", description=__doc__)
    add = p.add_argument
    add("--orders", type=_count, default=200, help="orders to place (default 200)")
    add(
        "--broker",
        type=_broker,
        default="memory://shop",
        help="memory:// (default, in-process) or amqp://user:pass@host/vhost",
    )
    add(
        "--store",
        type=_store,
        default="",
        help="a folder for SQLite files (default: a temporary one) or postgresql://... "
        "(a schema per service)",
    )
    add("--service", choices=SERVICES, help="run only this service, until Ctrl-C")
    add(
        "--elsewhere",
        choices=SERVICES,
        action="append",
        default=[],
        metavar="SERVICE",
        help="SERVICE runs in another process (--service SERVICE, same --run-id and stores)",
    )
    add("--run-id", default="", help="names the run's schemas (to share them with --service)")
    add("--port", type=_count, default=0, help="HTTP port of checkout (default: any free one)")
    add("--serve", action="store_true", help="keep the web page up after the run")
    add("--decline-rate", type=_rate, default=0.05, help="share of payments declined (0.05)")
    add("--shortage-rate", type=_rate, default=0.03, help="share of reservations short (0.03)")
    add("--duplicate-rate", type=_rate, default=0.0, help="share of messages sent twice")
    add(
        "--slow",
        type=_service_value("SECONDS", _seconds),
        action="append",
        default=[],
        metavar="SERVICE=SECONDS",
        help="each handler of SERVICE takes this long",
    )
    add(
        "--crash-rate",
        type=_service_value("P", _rate),
        action="append",
        default=[],
        metavar="SERVICE=P",
        help="a handler of SERVICE raises after writing, with probability P",
    )
    add(
        "--deadline",
        type=_seconds,
        default=10.0,
        help="seconds the saga waits for payment and stock (default 10)",
    )
    add("--seed", type=int, default=13, help="seed of the fault decisions")
    add("--trace", choices=("console", "otlp"), help="export each order's trace")
    add("--verbose", action="store_true", help="a line per message handled")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parser().parse_args(argv)
    console = Console()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = ShopConfig(
        broker=args.broker,
        run_id=args.run_id or ("shop" if args.service else uuid.uuid4().hex[:8]),
        faults=Faults(
            args.decline_rate,
            args.shortage_rate,
            args.duplicate_rate,
            dict(args.slow),
            dict(args.crash_rate),
            args.seed,
        ),
        deadline=args.deadline,
        verbose=args.verbose,
    )
    if args.verbose:
        config.say = lambda line: console.print(line, markup=False, highlight=False)
    if args.trace:
        from sample_app.tracing import TracingUnavailable, tracer_provider

        try:
            config.tracer_provider = tracer_provider(args.trace)
        except TracingUnavailable as exc:
            print(f"python -m sample_app: error: {exc}", file=sys.stderr)
            return 2
    counter = DuplicateCounter(config.tally)
    counter.install(propagate=args.verbose)
    try:
        with tempfile.TemporaryDirectory(prefix="busline-shop-") as scratch:
            config.store = args.store or scratch
            if not is_postgres(config.store):
                Path(config.store.removeprefix("sqlite:///")).mkdir(parents=True, exist_ok=True)
            from sample_app.run import run_all, run_one

            if args.service:
                return asyncio.run(run_one(config, args.service, args.port))
            if "checkout" in args.elsewhere:
                parser().error("checkout takes the orders here: it cannot run --elsewhere")
            here = tuple(name for name in SERVICES if name not in args.elsewhere)
            return asyncio.run(run_all(config, args.orders, console, args.port, args.serve, here))
    except KeyboardInterrupt:
        return 130
    finally:
        counter.remove()
        if config.tracer_provider is not None:
            config.tracer_provider.shutdown()
