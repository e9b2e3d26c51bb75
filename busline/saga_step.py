"""Running one saga step inside the store transaction of the message that drives it.

Load the instance by its key, run the step on its state, then write, in the same transaction as
the inbox record and the outbox: the new state (versioned: optimistic concurrency), the steps
taken, the timeouts requested (scheduled outbox messages, each replacing a pending one of the same
key) and, on completion, the instance's end. A step that loses a race (another message of the same
instance committed first, or a concurrent start created it) raises :class:`SagaConflict`; the
:class:`ConflictRetries` stage rolls back, reloads and runs it again with its own budget.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

import msgspec

from busline.clock import Clock
from busline.context import STORE_TX_ITEM, Context
from busline.envelope import new_message_id
from busline.errors import Reject
from busline.messages import Message, MessageKind
from busline.middleware import ConsumeNext, Middleware, OptionCheck
from busline.outgoing import MessageFactory
from busline.registry import HandlerSpec
from busline.saga import Saga, SagaHandler
from busline.saga_context import HEADER_SAGA_TIMEOUT, RecordedUndo, SagaContext
from busline.stores import StoreSettings, StoreTransaction
from busline.stores.rows import outbox_values, transaction_values
from busline.stores.sagas import SagaRecord, SagaStep

log = logging.getLogger("busline.saga")

_undo_decoder = msgspec.json.Decoder(list[RecordedUndo])


class StepSpan(Protocol):
    """Where a step records its outcome (the tracing span, or nowhere)."""

    def outcome(self, outcome: str) -> None:
        """Record what the step did to its instance."""


class StepTracer(Protocol):
    """Traces saga steps (:class:`busline.tracing.Telemetry` when tracing is on)."""

    def saga_step(self, saga: str, key: str) -> AbstractContextManager[StepSpan]:
        """A span around one step of instance ``key`` of ``saga``."""


class _NoSpan:
    __slots__ = ()

    def outcome(self, outcome: str) -> None:
        """Tracing is off: nothing to record."""


_NO_SPAN = _NoSpan()


class SagaConflict(Exception):
    """Another transaction wrote the instance since this step read it."""


class ConflictRetries(Middleware):
    """Runs a saga step again (in a fresh transaction) when it lost an optimistic-concurrency
    race, up to ``retries`` times; then the conflict counts as an ordinary failure."""

    handler_options: ClassVar[Mapping[str, OptionCheck]] = {}

    def __init__(self, saga: str, retries: int) -> None:
        self.saga = saga
        self.retries = retries

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Retry ``call_next`` on :class:`SagaConflict`."""
        for conflict in range(self.retries + 1):
            try:
                await call_next(ctx)
                return
            except SagaConflict:
                if conflict == self.retries:
                    raise
                log.debug("saga %s: %s lost a race; reloading", self.saga, ctx.message_id)
                ctx.outgoing.clear()
                ctx.items.clear()
                ctx.committed = None


class SagaRunner:
    """Runs the steps of one saga on one bus.

    Args:
        saga: The declaration.
        factory: Builds the messages the steps send (and their timeouts).
        clock: Times of steps and timeouts.
        settings: The store's settings (how long completed instances are kept).
    """

    def __init__(
        self, saga: Saga, factory: MessageFactory, clock: Clock, settings: StoreSettings
    ) -> None:
        self.saga = saga
        self._factory = factory
        self._clock = clock
        self._keep_completed = settings.keeps_completed_sagas
        self._state_decoder = msgspec.json.Decoder(saga.state_type)
        #: Set by the bus when tracing is on.
        self.telemetry: StepTracer | None = None
        self._timeout_types = frozenset(
            name for name, h in saga.handlers.items() if h.kind is MessageKind.COMMAND
        )

    def specs(self, service: str) -> list[HandlerSpec]:
        """One handler spec per message type the saga handles."""
        conflicts = ConflictRetries(self.saga.name, self.saga.conflict_retries)
        specs = []
        for name, handler in self.saga.handlers.items():
            step_name = f"{self.saga.name}.{handler.func.__name__}"
            queue = name if handler.kind is MessageKind.COMMAND else f"{service}.{step_name}"
            specs.append(
                HandlerSpec(
                    kind=handler.kind,
                    message_type=handler.message_type,
                    func=self._step_of(handler),
                    name=step_name,
                    queue=queue,
                    prefetch=None,
                    wants_context=True,
                    options={},
                    stages=(conflicts,),
                    sends=handler.sends,
                    publishes=handler.publishes,
                )
            )
        return specs

    def _step_of(self, handler: SagaHandler) -> Any:
        async def saga_step(message: Message, ctx: Context) -> None:
            await self.step(handler, message, ctx)

        saga_step.__qualname__ = f"{self.saga.name}:{handler.func.__qualname__}"
        return saga_step

    async def step(self, handler: SagaHandler, message: Message, ctx: Context) -> None:
        """Load, run and save one step, all in the message's store transaction (inside a
        ``saga`` span when tracing is on)."""
        key = handler.key_of(message)
        telemetry = self.telemetry
        if telemetry is None:
            await self._step(handler, message, ctx, key, _NO_SPAN)
            return
        with telemetry.saga_step(self.saga.name, key) as span:
            await self._step(handler, message, ctx, key, span)

    async def _step(
        self, handler: SagaHandler, message: Message, ctx: Context, key: str, span: StepSpan
    ) -> None:
        tx: StoreTransaction = ctx.items[STORE_TX_ITEM]
        saga = self.saga
        record = await tx.load_saga(saga.name, key)
        running = record is not None and record.status != "completed"
        if not running:
            if ctx.headers.get(HEADER_SAGA_TIMEOUT) is not None:
                log.debug("saga %s/%s: a timeout after the end; dropped", saga.name, key)
                span.outcome("dropped")
                return
            if record is not None or not handler.starts:
                span.outcome("not found")
                self._not_found(key, ctx, completed=record is not None)
                return
            state: Any = saga.new_state(key, message, handler)
            compensations: list[RecordedUndo] = []
        else:
            assert record is not None
            state, compensations = self._load(record)
        step = SagaContext(
            ctx, self._factory, saga.name, key, compensations, self._timeout_types, handler
        )
        await handler.func(message, state, step)
        try:
            await self._save(tx, record if running else None, key, state, step)
        except SagaConflict:
            span.outcome("conflict")
            raise
        span.outcome(_outcome(record if running else None, step))

    def _load(self, record: SagaRecord) -> tuple[Any, list[RecordedUndo]]:
        try:
            state = self._state_decoder.decode(record.state)
            compensations = _undo_decoder.decode(record.compensations or b"[]")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Retrying cannot make it decode: park the message with the reason instead.
            raise Reject(
                f"saga {self.saga.name!r} instance {record.key!r}: its stored state does not "
                f"decode into {self.saga.state_type.__name__} ({exc}); fix the row or the type"
            ) from exc
        return state, compensations

    def _not_found(self, key: str, ctx: Context, *, completed: bool) -> None:
        what = "is completed" if completed else "has no instance"
        if self.saga.not_found == "error":
            raise Reject(f"saga {self.saga.name!r} {what} for key {key!r} ({ctx.message_type})")
        log.info(
            "saga %s: %s %s for key %r %s; ignored",
            self.saga.name,
            ctx.message_type,
            ctx.message_id,
            key,
            what,
        )

    async def _save(
        self,
        tx: StoreTransaction,
        record: SagaRecord | None,
        key: str,
        state: Any,
        step: SagaContext,
    ) -> None:
        """Write the instance, its step, its timeouts (or its end) in the open transaction."""
        saga, now = self.saga, self._clock.now()
        outcome = _outcome(record, step)
        prefix = f"{saga.name}/{key}/"
        if step.completed and not self._keep_completed:
            if record is not None and not await tx.delete_saga(saga.name, key, record.version):
                raise SagaConflict(step.saga_id)
            await tx.cancel_scheduled(prefix)
            return
        new = SagaRecord(
            saga=saga.name,
            key=key,
            state=msgspec.json.encode(state),
            version=1 if record is None else record.version + 1,
            status="completed" if step.completed else "running",
            compensations=msgspec.json.encode(step.compensations),
            created_at=now if record is None else record.created_at,
            updated_at=now,
            completed_at=now if step.completed else None,
        )
        written = (
            await tx.insert_saga(new)
            if record is None
            else await tx.update_saga(new, record.version)
        )
        if not written:
            raise SagaConflict(step.saga_id)
        await tx.add_saga_step(
            saga.name, key, SagaStep(step.message_id, step.message_type, now, outcome)
        )
        if step.completed:
            await tx.cancel_scheduled(prefix)
            return
        for timeout in step.timeouts:
            tx_id = new_message_id()
            out = timeout.out
            await tx.add_outbox(
                transaction_values(tx_id, out.envelope.source, 1, now, now + timeout.delay),
                [outbox_values(tx_id, 0, out.kind, out.destination, out.envelope, now)],
                schedule_key=timeout.schedule_key,
            )


def _outcome(record: SagaRecord | None, step: SagaContext) -> str:
    """The step's outcome as recorded and traced."""
    if step.compensated is not None:
        return f"compensated: {step.compensated}"
    if step.completed:
        return "completed"
    return "started" if record is None else "updated"
