"""``busline run``: run one or more buses until SIGINT or SIGTERM, then shut down gracefully.

``--workers N`` starts N worker processes, each running every bus given; they compete on the
same queues, so the load is shared. The parent forwards SIGINT and SIGTERM to them and waits:
each worker stops consuming, finishes the messages in hand, acknowledges them and exits. When a
bus cannot start, its error is one line and the exit status is 1 (with several workers, the
others are stopped too). ``--loop`` picks the event loop: uvloop when it is installed
(``busline[uvloop]``), unless told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from types import FrameType, TracebackType

from busline.bus import Bus
from busline.cli.common import FAILURE, USAGE, complain
from busline.cli.targets import add_targets, load_all
from busline.lifecycle import run_until_signalled

log = logging.getLogger("busline")

HELP = "run one or more buses until SIGINT/SIGTERM (--workers N: N processes share the queues)"

#: Set by the parent in each worker's environment: the worker's number, shown in its logs.
WORKER_VARIABLE = "BUSLINE_WORKER"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(busline_services)s[%(process)d] %(name)s: %(message)s"


class StartError(Exception):
    """A bus could not start."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``busline run``'s arguments."""
    add_targets(parser)
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker processes (default: 1)"
    )
    parser.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="the event loop: uvloop if installed (auto, the default), asyncio's own, or uvloop",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the log level (default: INFO)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the buses (in this process, or in N workers); return the exit status."""
    if args.workers < 1:
        complain("busline run", "--workers must be at least 1")
        return USAGE
    try:
        new_loop = loop_factory(args.loop)
    except ImportError:
        complain("busline run", "--loop uvloop needs uvloop: pip install 'busline[uvloop]'")
        return USAGE
    buses = load_all(args.targets)  # in the parent too: a bad target fails before any fork
    if args.workers > 1:
        return supervise(
            args.targets, args.workers, ["--log-level", args.log_level, "--loop", args.loop]
        )
    configure_logging(buses, args.log_level)
    log.info("busline run: on %s's event loop", "asyncio" if new_loop is None else "uvloop")
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(run_until_signalled(AllBuses(buses), "busline run"))
    except StartError as exc:
        complain("busline run", exc)
        return FAILURE
    return 0


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the event loop for ``--loop choice``: uvloop's when asked for, or (``auto``)
    when it is installed; ``None`` for asyncio's own. ``uvloop`` without it installed raises
    ``ImportError``."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def configure_logging(buses: list[Bus], level: str) -> None:
    """Log to stderr, each line naming the services (and worker) of this process."""
    worker = os.environ.get(WORKER_VARIABLE)
    label = ",".join(bus.service for bus in buses) + (f"#{worker}" if worker else "")

    def add_label(record: logging.LogRecord) -> bool:
        record.busline_services = label
        return True

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(add_label)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


class AllBuses:
    """Several buses as one: started in order (all or none), stopped together."""

    def __init__(self, buses: list[Bus]) -> None:
        self.buses = buses
        self._started: list[Bus] = []

    async def __aenter__(self) -> AllBuses:
        for bus in self.buses:
            try:
                await bus.start()
            except Exception as exc:
                await self._stop(bus, *reversed(self._started))
                raise StartError(
                    f"bus {bus.service} failed to start: {type(exc).__name__}: {exc}"
                ) from exc
            self._started.append(bus)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop(*reversed(self._started))

    @staticmethod
    async def _stop(*buses: Bus) -> None:
        # Concurrently: each bus finishes its in-flight messages within its shutdown_timeout.
        await asyncio.gather(*(bus.stop() for bus in buses))


def supervise(targets: list[str], workers: int, options: list[str]) -> int:
    """Start ``workers`` processes running ``targets`` (with ``options``, e.g. the log level);
    forward SIGINT/SIGTERM; wait for all.

    Returns 0 when every worker stopped cleanly after a signal, else 1 (a worker failed to
    start or died, and the others were stopped).
    """
    argv = [sys.executable, "-m", "busline", "run", *targets, "--workers", "1", *options]
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            # os.kill, not Popen.send_signal: that polls, and could reap a worker behind
            # os.wait()'s back. A pid stays in `children` only until os.wait() reaps it.
            os.kill(pid, signum)

    # Installed first: a signal while workers are being started still reaches those started.
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for n in range(1, workers + 1):
            # Each worker in its own session: a terminal's Ctrl-C reaches the parent only,
            # which forwards it once, rather than every process receiving it twice.
            child = subprocess.Popen(
                argv, env={**os.environ, WORKER_VARIABLE: str(n)}, start_new_session=True
            )
            children[child.pid] = child
            if stopping:
                os.kill(child.pid, signal.SIGTERM)
        return _wait_for(children, lambda: stopping, forward)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for(
    children: dict[int, subprocess.Popen[bytes]],
    stopping: Callable[[], bool],
    stop: Callable[[int, FrameType | None], None],
) -> int:
    """Reap workers as they exit; the first to exit unasked stops the others (status 1)."""
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()  # a signal runs `forward`, then the wait goes on
        except ChildProcessError:  # nothing left to reap (reaped elsewhere): done
            return status if stopping() else FAILURE
        child = children.pop(pid, None)
        if child is None:
            continue
        child.returncode = os.waitstatus_to_exitcode(wait_status)
        if child.returncode != 0 or not stopping():
            status = FAILURE
            if not stopping():
                stop(signal.SIGTERM, None)
    return status
