"""The consumer is a process of its own: killed with SIGKILL mid-run (its inbox must absorb the
redeliveries), or too slow for its producer (its memory must stay bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

import aio_pika

from tests.faults.env import FaultEnv
from tests.faults.ledger import Effects, Result, prepare, settle
from tests.faults.load import producer_bus, send_commands
from tests.faults.plain import ERROR_QUEUE, ready_count, until
from tests.faults.servers import ROOT

#: Growth of the consumer's resident memory over its size when it started consuming, beyond
#: which the backlog is evidently being pulled into the process.
RSS_BOUND_MB = 50


class WorkerProcess:
    """A ``tests.faults.worker`` process and what it reported on stdout."""

    def __init__(self, url: str, store: str, *, delay: float = 0.0) -> None:
        self.args = [url, store, "--delay", str(delay)]
        self.duplicates = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn it and return once it consumes (it printed READY)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.faults.worker", *self.args,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if line.strip() != b"READY":
            raise RuntimeError(f"worker did not start (said {line!r})")
        self._reader = asyncio.create_task(self._read(self.proc.stdout))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            if line.strip() == b"DUP":
                self.duplicates += 1

    def memory_kb(self, field: str = "VmRSS") -> int:
        """A memory figure of /proc/PID/status (VmRSS now, VmHWM the peak), in kB."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no ack, nothing flushed but what was already written."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        if self._reader is not None:
            await self._reader  # the pipe is at EOF now: every DUP line is counted

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not gone after 20 s."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            await self.kill()
        if self._reader is not None:
            await self._reader


async def sigkill(env: FaultEnv) -> Result:
    """Scenario 2: SIGKILL the consumer process mid-run, start a new one at once."""
    result = Result("SIGKILL of the consumer process")
    count, kills = (10_000, 3) if env.long else (600, 1)
    url, store = await env.vhost(), await env.pg.new_database()
    await prepare(store)
    effects, keys = Effects(store), [f"k{i}" for i in range(count)]
    producer = producer_bus(url)
    workers = [WorkerProcess(url, store, delay=0.005)]
    deadline = time.monotonic() + (300 if env.long else 90)
    recoveries: list[float] = []
    async with producer, contextlib.AsyncExitStack() as stack:
        await workers[0].start()
        stack.push_async_callback(lambda: workers[-1].stop())
        watcher = asyncio.create_task(effects.watch())
        stack.callback(watcher.cancel)
        sending = asyncio.create_task(send_commands(producer, keys, rate=300 if env.long else 150))
        stack.callback(sending.cancel)
        for k in range(1, kills + 1):
            if not await effects.wait_for(count * k // (kills + 1), deadline):
                break
            await workers[-1].kill()
            killed = await effects.mark()  # the dead process commits nothing more
            workers.append(WorkerProcess(url, store, delay=0.005))
            await workers[-1].start()
            if await until(lambda k=killed: effects.resumed_after(k) is not None, deadline):
                recoveries.append(effects.resumed_after(killed) or 0.0)
        await asyncio.wait_for(sending, max(1.0, deadline - time.monotonic()))
        result.finished = await effects.wait_for(count, deadline)
    await settle(result, effects, set(keys))
    result.absorbed = sum(w.duplicates for w in workers)
    result.parked = await ready_count(url, ERROR_QUEUE)
    result.recovery = max(recoveries) if len(recoveries) == kills else None
    result.notes.append(f"{kills} kill(s); recovery includes starting the new process")
    result.check("nothing parked", result.parked == 0)
    return result


async def slow_consumer(env: FaultEnv) -> Result:
    """Scenario 6: a producer sending as fast as the broker confirms, a consumer whose handler
    takes 20 ms: the backlog must wait in the broker, not in the consumer's memory."""
    result = Result("slow consumer, fast producer")
    count = 30_000 if env.long else 3_000
    url, store = await env.vhost(), await env.pg.new_database()
    await prepare(store)
    effects, keys = Effects(store), [f"k{i}" for i in range(count)]
    producer = producer_bus(url)
    worker = WorkerProcess(url, store, delay=0.02)
    deadline = time.monotonic() + (600 if env.long else 120)
    peak_depth = 0
    async with producer, contextlib.AsyncExitStack() as stack:
        await worker.start()
        stack.push_async_callback(worker.stop)
        baseline = worker.memory_kb()
        sending = asyncio.create_task(send_commands(producer, keys, rate=None, workers=64))
        stack.callback(sending.cancel)
        connection = await aio_pika.connect(url)
        stack.push_async_callback(connection.close)
        channel = await connection.channel()
        while time.monotonic() < deadline and await effects.handled() < count:
            queue = await channel.declare_queue("faults.Work", passive=True)
            peak_depth = max(peak_depth, queue.declaration_result.message_count or 0)
            await asyncio.sleep(0.2)  # the sampling period of the queue depth
        result.finished = await effects.wait_for(count, deadline)
        peak = worker.memory_kb("VmHWM")
    await settle(result, effects, set(keys))
    result.parked = await ready_count(url, ERROR_QUEUE)
    growth_mb = (peak - baseline) / 1024
    result.notes.append(
        f"consumer RSS {baseline / 1024:.0f} MB at start, peak +{growth_mb:.1f} MB; "
        f"queue depth peaked at {peak_depth}"
    )
    result.check("nothing parked", result.parked == 0)
    result.check(f"consumer memory bounded (+{RSS_BOUND_MB} MB)", growth_mb < RSS_BOUND_MB)
    result.check("the backlog waited in the broker", peak_depth > 10 * 32)
    return result
