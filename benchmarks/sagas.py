"""The ``saga`` workload: saga steps per second on a store, against a plain handler that does the
same on the same store, on RabbitMQ (classic queues).

Each instance is driven by one start command and ``saga_updates`` update commands (the suite's
payload, the instance's key in ``order_id``; two command types, so two queues):

- saga rows (``saga=True``): a :class:`~busline.Saga` whose start step creates the instance and
  whose update step loads it; each step counts itself in the state (``steps``, ``seq_sum``) and
  sends one command. State, step record, inbox record and outbox row commit together.
- handler rows: each command goes to a plain command handler that writes one business row through
  ``ctx.db`` and sends one command (row, inbox record and outbox row commit together).

Every sent command goes to a sink queue consumed by a plain handler on a second bus of the same
process, without a store, which reports it to the tracker: the clock runs from the first start
sent until the last step's command arrived. A round sends every start and waits for their
commands before it sends the updates (an update before its start would find no instance), then
the updates round-robin (update 1 of every instance, then update 2, ...), so that one instance's
updates are seldom in flight together. Steps that lost an optimistic-concurrency race and ran
again are counted from busline's debug log. A warm-up round of ``warmup // (1 + updates)``
instances runs first.

Afterwards each instance must hold exactly its ``1 + updates`` steps and the sum of its messages'
sequence numbers (no update lost or applied twice), each handled message its business row, no
outbox row may be pending, and the tracker has seen every sent command exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from time import perf_counter, process_time
from typing import TYPE_CHECKING, Any

import msgspec

from benchmarks.drive import drive_window
from benchmarks.payload import Tracker, payload_fields
from benchmarks.spec import RunSpec, Topology
from benchmarks.stores import BUSINESS_TABLE, INSERT_BUSINESS, BenchStore
from benchmarks.systems.base import OnMessage, System
from benchmarks.systems.busline_common import BuslineSystem, command_type, payload
from busline import Bus, Context, Saga, SagaContext

if TYPE_CHECKING:
    from benchmarks.probe import Probe

SAGA_NAME = "bench.saga"


class StepCount(msgspec.Struct):
    """An instance's state: the steps it took and the sum of their messages' ``seq``."""

    order_id: str
    steps: int = 0
    seq_sum: int = 0


@dataclass(frozen=True)
class Round:
    """``count`` instances numbered from ``first_instance``, their messages from ``first_seq``:
    the starts first, then update ``j`` of instance ``i`` is ``first_seq + j * count + i``."""

    first_instance: int
    count: int
    first_seq: int
    updates: int

    @property
    def messages(self) -> int:
        """Starts and updates."""
        return self.count * (1 + self.updates)

    def key(self, seq: int) -> str:
        """The instance ``seq`` belongs to."""
        return f"i{self.first_instance + (seq - self.first_seq) % self.count:08d}"

    def expected(self) -> Iterator[tuple[str, int]]:
        """Each instance's key and the sum of its messages' ``seq``."""
        steps = 1 + self.updates
        for i in range(self.count):
            seq_sum = steps * (self.first_seq + i) + self.count * self.updates * steps // 2
            yield f"i{self.first_instance + i:08d}", seq_sum


class SagaRig:
    """A run's two buses: the measured one (saga or handler, with the store) and the sink's."""

    def __init__(self, system: BuslineSystem, topology: Topology, saga: bool) -> None:
        self.system = system
        self.topology = topology
        self.saga = saga
        update_queue, sink_queue = topology.extra_queues
        self.start_type = command_type(topology.queue)
        self.update_type = command_type(update_queue)
        self.sink_type = command_type(sink_queue)
        self.round: Round | None = None
        self._buses: list[Bus] = []

    async def start(self, on_message: OnMessage) -> None:
        """Provision the store, wire both buses and start them."""
        system, topology = self.system, self.topology
        store = await system.open_store(topology)
        assert store is not None
        bus = system.make_bus(topology)
        if self.saga:
            bus.add_saga(self._saga())
        else:
            handle = self._handler(store)
            bus.command_handler(self.start_type)(handle)
            bus.command_handler(self.update_type)(handle)
        sink = system.make_bus(replace(topology, service=f"{topology.service}-sink"), store=None)

        @sink.command_handler(self.sink_type)
        async def arrived(message: Any) -> None:
            on_message(0, message.seq, message.sent_at)

        self._buses = [sink, bus]
        for each in self._buses:
            await each.start()

    def _saga(self) -> Saga:
        saga = Saga(SAGA_NAME, state=StepCount, key="order_id", not_found="error")
        sink = self.sink_type

        async def step(message: Any, state: StepCount, ctx: SagaContext) -> None:
            state.steps += 1
            state.seq_sum += message.seq
            await ctx.send(payload(sink, message.seq, message.sent_at))

        @saga.starts(self.start_type)
        async def started(message: Any, state: StepCount, ctx: SagaContext) -> None:
            await step(message, state, ctx)

        @saga.handles(self.update_type)
        async def updated(message: Any, state: StepCount, ctx: SagaContext) -> None:
            await step(message, state, ctx)

        return saga

    def _handler(self, store: BenchStore) -> Any:
        """One business row (keyed by instance and message) and one command per message."""
        insert, sqlite, sink = INSERT_BUSINESS[store.kind], store.kind == "sqlite", self.sink_type

        async def handle(message: Any, ctx: Context) -> None:
            key = f"{message.order_id}/{message.seq}"
            values = (key, message.seq, message.sku, message.quantity)
            if sqlite:  # aiosqlite takes a tuple, asyncpg positional arguments
                await ctx.db.execute(insert, values)
            else:
                await ctx.db.execute(insert, *values)
            await ctx.send(payload(sink, message.seq, message.sent_at))

        return handle

    async def send(self, seq: int, sent_at: float) -> None:
        """Send message ``seq`` of the current round: a start or an update of its instance."""
        rnd = self.round
        assert rnd is not None and self._buses, "start() and a round first"
        kind = self.start_type if seq - rnd.first_seq < rnd.count else self.update_type
        fields = payload_fields(seq, sent_at)
        fields["order_id"] = rnd.key(seq)
        await self._buses[1].send(kind(**fields))

    async def stop(self) -> None:
        """Stop the measured bus, then the sink's (in-flight handlers finish first)."""
        buses, self._buses = self._buses, []
        for bus in reversed(buses):
            await bus.stop()

    async def check(self, rounds: list[Round]) -> list[str]:
        """What is wrong with what the run committed (nothing, when all went well)."""
        store = self.system.store
        assert store is not None
        total = sum(r.messages for r in rounds)
        problems: list[str] = []
        pending = await store.count("busline_outbox_transactions", "dispatched_at IS NULL")
        if pending:
            problems.append(f"{pending} outbox transactions never sent")
        if self.saga:
            return problems + await _check_instances(store, rounds)
        found = await store.rows(f"SELECT COUNT(*), SUM(seq) FROM {BUSINESS_TABLE}")
        count, seq_sum = found[0]
        if (count, seq_sum) != (total, total * (total - 1) // 2):
            problems.append(f"{count} business rows (seq sum {seq_sum}) for {total} messages")
        return problems


async def _check_instances(store: BenchStore, rounds: list[Round]) -> list[str]:
    """Every instance ran its every step once: no update lost, none applied twice."""
    where = "?" if store.kind == "sqlite" else "$1"
    rows = await store.rows(f"SELECT state FROM busline_sagas WHERE saga = {where}", SAGA_NAME)
    states = {
        s.order_id: s for s in (msgspec.json.decode(bytes(r[0]), type=StepCount) for r in rows)
    }
    wrong = [
        f"{key}: {state.steps if state else 0} steps, seq sum {state.seq_sum if state else 0}"
        for r in rounds
        for key, seq_sum in r.expected()
        if (state := states.get(key)) is None
        or (state.steps, state.seq_sum) != (1 + r.updates, seq_sum)
    ]
    expected = sum(r.count for r in rounds)
    if wrong or len(states) != expected:
        return [f"{len(states)} instances for {expected}; {len(wrong)} wrong: {wrong[:3]}"]
    return []


class _Conflicts(logging.Filter):
    """Counts busline's "lost a race; reloading" debug records (and keeps them out of the log)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "lost a race" in str(record.msg):
            self.count += 1
            return False
        return True


@contextmanager
def counting_conflicts() -> Iterator[_Conflicts]:
    """Count saga steps that lost an optimistic-concurrency race while the block runs."""
    logger = logging.getLogger("busline.saga")
    counter, level = _Conflicts(), logger.level
    logger.addFilter(counter)
    logger.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        logger.setLevel(level)
        logger.removeFilter(counter)


async def _phase(rig: SagaRig, tracker: Tracker, first: int, count: int, spec: RunSpec) -> float:
    """Send ``first .. first+count-1`` and wait for each one's command at the sink."""
    tracker.expect(first, count)
    await drive_window(rig.send, first, count, spec.window)
    return await tracker.wait(spec.timeout)


async def _round(rig: SagaRig, tracker: Tracker, rnd: Round, spec: RunSpec) -> tuple[float, float]:
    """Drive one round: its starts, then its updates; return when each phase ended."""
    rig.round = rnd
    starts_done = await _phase(rig, tracker, rnd.first_seq, rnd.count, spec)
    updates = rnd.count * rnd.updates
    return starts_done, await _phase(rig, tracker, rnd.first_seq + rnd.count, updates, spec)


async def saga_steps(
    spec: RunSpec, system: System, topology: Topology, probe: Probe
) -> dict[str, Any]:
    """Steps per second of a saga (or of the plain handler) with a store, end to end."""
    if not isinstance(system, BuslineSystem) or system.store_kind is None:
        raise ValueError(f"the saga workload needs a busline system with a store: {spec.system}")
    k = spec.saga_updates
    rig = SagaRig(system, topology, saga=bool(getattr(system, "saga", False)))
    tracker = Tracker(1)
    warm = Round(0, max(1, spec.warmup // (1 + k)), 0, k) if spec.warmup > 0 else None
    measured = Round(warm.count if warm else 0, spec.n, warm.messages if warm else 0, k)
    try:
        await rig.start(tracker.on_message)
        if warm is not None:
            await _round(rig, tracker, warm, spec)
        with probe(), counting_conflicts() as conflicts:
            cpu_started = process_time()
            started = perf_counter()
            starts_done, finished = await _round(rig, tracker, measured, spec)
            cpu = process_time() - cpu_started
        await rig.stop()
        problems = await rig.check([r for r in (warm, measured) if r is not None])
    finally:
        await rig.stop()
        await system.stop()
    if problems:
        raise RuntimeError("saga workload outputs wrong: " + "; ".join(problems))
    steps = measured.messages
    return {
        "messages": steps,
        "instances": spec.n,
        "updates": k,
        "elapsed_s": finished - started,
        "rate": steps / (finished - started),
        "start_rate": spec.n / (starts_done - started),
        "update_rate": spec.n * k / (finished - starts_done),
        "cpu_us_per_msg": cpu / steps * 1e6,
        "conflicts": conflicts.count,
        "duplicates": tracker.duplicates,
        "unexpected": tracker.unexpected,
    }
