"""``busline run``: N worker processes share a load over RabbitMQ, SIGTERM lets each finish
and acknowledge the messages in hand, and a bus that cannot start fails the run in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aio_pika
import pytest

from busline import Bus
from tests.cli.fixtures.workers import Work
from tests.support import eventually

TARGET = "tests.cli.fixtures.workers:make_bus"
ROOT = Path(__file__).resolve().parents[2]


def start(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "busline", *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def running(*argv: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``busline *argv`` in a process of its own, killed at the end if still running."""
    process = start(*argv, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def terminate(process: subprocess.Popen[str]) -> str:
    """SIGTERM, as a service manager stops a service; wait for the exit; return stderr."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[1]


def lines(path: Path, word: str) -> list[tuple[int, int]]:
    """(message number, worker pid) of each ``word`` line of the record."""
    if not path.exists():
        return []
    found = [line.split() for line in path.read_text().splitlines()]
    return [(int(n), int(pid)) for what, n, pid in found if what == word]


async def queue_state(url: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of ``queue``, or (0, 0) while it does not exist yet."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return 0, 0
        result = declared.declaration_result
        return result.message_count, result.consumer_count


async def test_two_workers_share_the_load_and_sigterm_finishes_in_flight(amqp_url, tmp_path):
    record = tmp_path / "record"
    env = {"CLI_TEST_URL": amqp_url, "CLI_TEST_RECORD": str(record)}
    # The option after the target, as typed on a shell.
    with running("run", TARGET, "--workers", "2", env=env) as parent:

        async def both_consuming() -> bool:
            return (await queue_state(amqp_url, "cli.Work"))[1] == 2

        await eventually(both_consuming, timeout=30, what="two workers consuming")
        async with Bus("cli-client", amqp_url) as client:
            for n in range(40):
                await client.send(Work(n=n, seconds=0.02))
            await eventually(
                lambda: len(lines(record, "done")) == 40, timeout=30, what="40 handled"
            )
            shares = Counter(pid for _, pid in lines(record, "done"))
            assert len(shares) == 2 and min(shares.values()) > 0, shares
            assert sorted(n for n, _ in lines(record, "done")) == list(range(40))

            # Two slow messages, one in each worker's hands when the signal comes.
            for n in (100, 101):
                await client.send(Work(n=n, seconds=1.5))
            await eventually(
                lambda: {n for n, _ in lines(record, "start")} >= {100, 101},
                what="both slow messages started",
            )
        err = terminate(parent)
    assert parent.returncode == 0, err
    finished = dict(lines(record, "done"))
    assert {100, 101} <= set(finished)
    assert finished[100] != finished[101]  # each worker finished its own
    assert await queue_state(amqp_url, "cli.Work") == (0, 0)  # acked: nothing went back
    assert await queue_state(amqp_url, "busline.error") == (0, 0)
    assert "cli-worker#1[" in err and "cli-worker#2[" in err  # the log names the service


def test_a_bus_that_cannot_start_fails_in_one_line(tmp_path):
    env = {
        "CLI_TEST_URL": "amqp://guest:hunter2@127.0.0.1:1/",
        "CLI_TEST_RECORD": str(tmp_path / "record"),
        "CLI_TEST_START_WITHIN": "1",
    }
    for workers in ("1", "2"):
        parent = start("run", "--workers", workers, TARGET, "--log-level", "ERROR", env=env)
        _, err = parent.communicate(timeout=60)
        assert parent.returncode == 1, (workers, err)
        failures = [line for line in err.splitlines() if line.startswith("busline run:")]
        assert failures and all("bus cli-worker failed to start" in f for f in failures), err
        assert 1 <= len(failures) <= int(workers)  # one line per worker that got to try
        assert "hunter2" not in err and "guest:***@" in failures[0]


@pytest.mark.parametrize(
    ("choice", "module"),
    [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio.unix_events")],
)
async def test_the_loop_option_picks_the_event_loop(amqp_url, tmp_path, choice, module):
    # uvloop is installed here (busline[uvloop] is in the dev extra): auto takes it.
    record = tmp_path / "record"
    env = {"CLI_TEST_URL": amqp_url, "CLI_TEST_RECORD": str(record)}
    with running("run", TARGET, "--loop", choice, env=env) as worker:

        async def consuming() -> bool:
            return (await queue_state(amqp_url, "cli.Work"))[1] == 1

        await eventually(consuming, timeout=30, what="the worker consuming")
        async with Bus("cli-client", amqp_url) as client:
            await client.send(Work(n=1))
        await eventually(lambda: len(lines(record, "done")) == 1, timeout=30, what="the work done")
        err = terminate(worker)
    assert worker.returncode == 0, err
    loops = [line.split()[1] for line in record.read_text().splitlines() if line[:5] == "loop "]
    assert loops == [module]
    assert f"on {module.split('.')[0]}'s event loop" in err
