"""The scheduler: per endpoint a bounded pool of workers pulling cells lazily, under one
structured scope.

Each worker takes its endpoint's next cell and settles it, in this order: an identical cell
already being answered in this run (wait for it and share its answer — de-duplication is exact,
whatever the timing or the cache setting); the store (``StoreIO.claim``: an answer already
stored, or the request becomes ours, or another process is sending it right now — then we wait
for its answer rather than pay for it too); else the call itself through
``attempts.call_with_retry`` (limits and retries live there). The row is committed before it
is counted: a result is durable before anyone is told.

Workers, the store's pump and the heartbeat run in one task group: a failure anywhere (a store
write that fails, a bug) cancels the rest and surfaces at once — nothing waits on work that
nobody does.

Stopping: ``stop()`` (first Ctrl-C or SIGTERM, or an auth/quota failure) stops admitting cells;
calls on the wire may finish within ``grace_s`` and are then cancelled, leaving their cells
pending. Cells waiting for admission, a backoff or another process are cancelled at once.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BudgetExceeded, PromptgridError, ProviderError
from ..grid import Cell
from ..pricing import Pricing
from ..progress import NullProgress, Progress
from ..providers.base import Completion, Provider, Request
from ..spec.schema import RetryPolicy
from ..store import HEARTBEAT_S, ResultRow, leases
from . import limiter
from .answers import stored_answer, unstorable
from .attempts import Outcome, Sleep, call_with_retry
from .budget import Budget, charged_cost, vet, worst_cost
from .limiter import EndpointLimiter
from .storeio import StoreIO

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup
else:  # pragma: no cover - Python 3.10
    from exceptiongroup import BaseExceptionGroup
    from taskgroup import TaskGroup

#: Workers per call that may be in flight (the limiter's concurrency slots bound the calls).
WORKERS_PER_CALL = 2
#: How often a cell whose request another process is sending asks the store again.
CLAIM_POLL_S = 0.25


@dataclass
class Endpoint:
    """A provider and the limiter that guards it."""

    provider: Provider
    limiter: EndpointLimiter
    pricing: Pricing = field(default_factory=Pricing)  # what its calls cost
    workers: int | None = None  # this endpoint's own pool (default: the scheduler's concurrency)

    @property
    def free(self) -> bool:
        """Its calls cost nothing: nobody claims them, and no budget counts them."""
        return self.pricing.free

    def worst_cost(self, request: Request) -> float:
        """The most one attempt of ``request`` can cost (inf when it cannot be bounded)."""
        return worst_cost(self.pricing, request)


@dataclass
class Summary:
    """What a run of the scheduler did."""

    ok: int = 0
    errors: int = 0
    cached: int = 0
    spent: float = 0.0  # USD of the answers committed in this session
    stopped_by: PromptgridError | None = None  # auth, quota, or the budget
    interrupted: bool = False
    error_types: dict[str, int] = field(default_factory=dict)
    unbelievable_usage: int = 0  # paid answers whose usage was missing or not believed


@dataclass(frozen=True)
class _Watched:
    """A provider seen through the scheduler, which notes when a request is on the wire."""

    scheduler: Scheduler
    endpoint: str

    async def complete(self, request: Request) -> Completion:
        """Send through the scheduler's bookkeeping."""
        return await self.scheduler._send(self.endpoint, request)

    async def aclose(self) -> None:
        """The scheduler does not own the provider."""


class Scheduler:
    """Runs cells concurrently and commits each result as it arrives (see the module doc)."""

    def __init__(
        self,
        io: StoreIO,
        run_id: str,
        endpoints: Mapping[str, Endpoint],
        *,
        concurrency: int,
        retry: RetryPolicy,
        progress: Progress | None = None,
        sleep: Sleep | None = None,
        grace_s: float = 5.0,
        heartbeat_s: float | None = HEARTBEAT_S,
        budget: Budget | None = None,
    ) -> None:
        self.io = io
        self.run_id = run_id
        self.endpoints = endpoints
        self.concurrency = concurrency
        self.retry = retry
        self.progress = progress or NullProgress()
        self.sleep = sleep
        self.grace_s = grace_s
        self.heartbeat_s = heartbeat_s
        self.budget = budget
        self.summary = Summary()
        self._stopping = asyncio.Event()
        # Identical cells of this run: the first one's answer (in flight, then committed).
        self._inflight: dict[str, asyncio.Future[tuple[ResultRow, int | None]]] = {}
        self._errored: dict[str, ResultRow] = {}  # committed error rows, shared with duplicates
        self._calling: set[asyncio.Task[Any]] = set()  # settling a cell
        self._sending: set[asyncio.Task[Any]] = set()  # in provider.complete: on the wire
        self._unwritten: set[asyncio.Future[int | None]] = set()  # handed over, not committed
        self._room = asyncio.Semaphore(1)  # sized by execute()
        self._watched = {name: _Watched(self, name) for name in endpoints}
        io.on_commit = self._committed

    def stop(self) -> None:
        """Stop admitting cells; calls on the wire get ``grace_s`` to finish.

        Cells still waiting (for admission, a backoff, another process) are cancelled at once:
        nothing of theirs is on the wire, so they stay pending for a resume.
        """
        self.summary.interrupted = self.summary.stopped_by is None
        self._stopping.set()
        for task in self._calling - self._sending:
            task.cancel()

    async def execute(self, cells: Iterable[Cell] | Mapping[str, Iterable[Cell]]) -> Summary:
        """Run every cell (filter out resumed cells before), then return a summary.

        Given one stream per endpoint (a mapping from endpoint name to its cells), each
        endpoint gets its own pool of workers, so an endpoint that is paused by a 429 or slow to
        answer never holds up the others. Raises the first failure of any part (a
        :class:`~promptgrid.errors.StoreError`, a bug), after cancelling the rest.
        """
        streams: dict[str | None, Iterable[Cell]]
        if isinstance(cells, Mapping):
            streams = {name: stream for name, stream in cells.items()}
        else:
            streams = {None: cells}
        # Twice as many workers as calls may be in flight (the limiter holds the rest): while
        # some wait for the store, others keep the endpoint busy.
        sizes = {
            name: WORKERS_PER_CALL
            * ((self.endpoints[name].workers if name else None) or self.concurrency)
            for name in streams
        }
        # Rows handed to the store and not yet committed, at most: memory stays bounded by the
        # workers, whatever the size of the grid, while no worker waits for a commit.
        self._room = asyncio.Semaphore(4 * sum(sizes.values()))
        try:
            async with TaskGroup() as group:
                pump = group.create_task(self.io.pump())
                beat = group.create_task(self._heartbeat())
                workers: list[asyncio.Task[None]] = []
                grace = group.create_task(self._grace(workers))
                async with TaskGroup() as pool:
                    for name, stream in streams.items():
                        source = iter(stream)
                        workers += [pool.create_task(self._worker(source))
                                    for _ in range(sizes[name])]  # fmt: skip
                if self._unwritten:  # every row handed over is durable before we return
                    await asyncio.wait(list(self._unwritten))
                for task in (pump, beat, grace):
                    task.cancel()
        except BaseExceptionGroup as group_error:
            raise _first(group_error) from None
        return self.summary

    async def _grace(self, workers: Sequence[asyncio.Task[None]]) -> None:
        """Once stopping, give the calls on the wire ``grace_s``, then cancel every worker."""
        await self._stopping.wait()
        await asyncio.sleep(self.grace_s)
        for task in workers:
            task.cancel()

    async def _heartbeat(self) -> None:
        if self.heartbeat_s is None:
            return
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self.io.call(leases.heartbeat, self.io.owner)

    async def _worker(self, cells: Iterator[Cell]) -> None:
        for cell in cells:  # a shared iterator: next() never awaits, so workers cannot collide
            if self._stopping.is_set():
                return
            task = asyncio.current_task()
            assert task is not None
            self._calling.add(task)
            try:
                await self._settle(cell)
            finally:
                self._calling.discard(task)

    async def _settle(self, cell: Cell) -> None:
        cell_id = cell.cell_id
        if (first := self._inflight.get(cell_id)) is not None:
            row, response_id = await asyncio.shield(first)
            await self._submit(self._copy(cell, row, response_id))
            return
        if (failed := self._errored.get(cell_id)) is not None:
            await self._submit(self._copy(cell, failed, None))
            return
        done: asyncio.Future[tuple[ResultRow, int | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._inflight[cell_id] = done
        try:
            answered = await self._answer(cell)
            if answered is None:  # stopped by auth or quota: the cell stays pending
                raise asyncio.CancelledError
            written = await self._submit(answered)
        except BaseException:
            del self._inflight[cell_id]
            done.cancel()
            raise

        # Identical cells wait on ``done`` until the answer is committed, then share it.
        def committed(future: asyncio.Future[int | None]) -> None:
            del self._inflight[cell_id]
            if future.cancelled() or future.exception() is not None:
                done.cancel()
                return
            # The row as committed: the store may have had to keep it as its error row.
            row = self._errored.get(cell_id, answered)
            if row.status == "error":
                self._errored[cell_id] = row
            done.set_result((row, future.result()))

        written.add_done_callback(committed)

    async def _submit(self, row: ResultRow) -> asyncio.Future[int | None]:
        """Hand a row to the store without waiting for its commit (within the bounded room)."""
        await self._room.acquire()
        written = self.io.submit(row)
        self._unwritten.add(written)

        def release(future: asyncio.Future[int | None]) -> None:
            self._unwritten.discard(future)
            self._room.release()

        written.add_done_callback(release)
        return written

    async def _answer(self, cell: Cell) -> ResultRow | None:
        """The cell's row: from the store, or from the call (None if the run must stop)."""
        claim = not self.endpoints[cell.endpoint].free  # a free call is not worth waiting for
        while True:
            answer = await self.io.ask(cell.cell_id, claim=claim)
            if answer is True:
                break  # ours to send
            if isinstance(answer, int) and not isinstance(answer, bool):
                return self._row(cell, "ok", response_id=answer)
            await asyncio.sleep(CLAIM_POLL_S)  # another process is sending it: wait for it
        try:
            outcome = await self._call(cell)
        except BudgetExceeded as spent:
            self._stop_run(spent)
            return None
        error = outcome.error
        if error is not None and error.stops_run:
            # Auth or quota: no other call can succeed. The cell stays pending (resumable).
            self._stop_run(error)
            return None
        return self._row_from(cell, outcome)

    def _stop_run(self, cause: PromptgridError) -> None:
        """No other call may be sent (auth, quota, the budget): stop; the cell stays pending."""
        if self.summary.stopped_by is None:
            self.summary.stopped_by = cause
        self._stopping.set()

    async def _call(self, cell: Cell) -> Outcome:
        return await call_with_retry(
            cell.request,
            self._watched[cell.endpoint],
            self.endpoints[cell.endpoint].limiter,
            max_attempts=self.retry.max_attempts,
            max_wait_s=self.retry.max_wait_s,
            sleep=self.sleep or limiter.SLEEP,
        )

    async def _send(self, name: str, request: Request) -> Completion:
        """One attempt: admitted by the budget, marked as on the wire (so ``stop`` lets it
        finish), its cost settled with the budget."""
        if self._stopping.is_set():  # a retry after the stop: leave the cell pending
            raise asyncio.CancelledError
        endpoint = self.endpoints[name]
        budget = None if endpoint.free else self.budget
        reservation = await budget.admit(endpoint.worst_cost(request)) if budget else None
        task = asyncio.current_task()
        assert task is not None
        self._sending.add(task)
        cost: float | None = None
        try:
            completion = await endpoint.provider.complete(request)
            # From here on, usage the budget would not believe is unknown: the limiter keeps
            # its reservation, the row records None, and the cost is the worst case.
            completion, unbelievable = vet(endpoint.pricing, request, completion)
            self.summary.unbelievable_usage += unbelievable
            cost = charged_cost(endpoint.pricing, request, completion)
            return completion
        except ProviderError as error:
            # An HTTP error was not charged; a timeout, a dropped or garbled answer may have been.
            cost = 0.0 if error.http_status is not None else None
            raise
        finally:
            self._sending.discard(task)
            if budget is not None and reservation is not None:
                budget.settle(reservation, reservation.worst if cost is None else cost)

    def _committed(self, rows: Sequence[ResultRow], ids: Sequence[int | None]) -> None:
        """Count rows once they are durable."""
        errors = cached = 0
        spent = 0.0
        for row in rows:
            if row.answer is not None and row.cost_usd:
                spent += row.cost_usd
            if row.status == "ok":
                self.summary.ok += 1
                cached += row.cached
            else:
                self.summary.errors += 1
                errors += 1
                self._errored.setdefault(row.cell_id, row)  # shared with identical cells
                key = row.error_type or "unknown"
                self.summary.error_types[key] = self.summary.error_types.get(key, 0) + 1
        self.summary.cached += cached
        self.summary.spent += spent
        self.progress.advance(len(rows), errors=errors, cached=cached, spent=spent)

    # ------------------------------------------------------------------ rows

    def _row(self, cell: Cell, status: str, **fields: Any) -> ResultRow:
        return ResultRow(
            run_id=self.run_id,
            idx=cell.index,
            cell_id=cell.cell_id,
            prompt=cell.prompt,
            vars=dict(cell.vars),
            params=dict(cell.params),
            repeat=cell.repeat,
            request=cell.request.record(),
            status=status,
            attempts=fields.pop("attempts", ()),
            cached=fields.pop("cached", status == "ok" and "answer" not in fields),
            latency_s=fields.pop("latency_s", 0.0),
            cost_usd=fields.pop("cost_usd", 0.0),
            score=cell.score,
            **fields,
        )

    def _row_from(self, cell: Cell, outcome: Outcome) -> ResultRow:
        attempts = [
            {
                "number": a.number,
                "status": "error" if a.error else "ok",
                "error_type": a.error.code if a.error else None,
                "http_status": a.error.http_status if a.error else None,
                "error": a.error.message if a.error else None,
                "latency_s": a.latency_s,
            }
            for a in outcome.attempts
        ]
        if outcome.error is not None or outcome.completion is None:
            error = outcome.error
            return self._row(
                cell,
                "error",
                attempts=attempts,
                error_type=error.code if error else "unknown",
                http_status=error.http_status if error else None,
                error=error.message if error else "no completion",
                latency_s=outcome.latency_s,
                cost_usd=None,
            )
        c = outcome.completion  # vetted by _send
        try:
            cost = charged_cost(self.endpoints[cell.endpoint].pricing, cell.request, c)
            answer = stored_answer(cell.request, c, outcome.latency_s, cost)
        except Exception as exc:  # a value no check foresaw: this row's error, not the run's
            unsent = self._row(cell, "ok", attempts=attempts, cached=False,
                               latency_s=outcome.latency_s, cost_usd=None)  # fmt: skip
            return unstorable(unsent, exc)
        return self._row(
            cell, "ok", attempts=attempts, answer=answer, cached=False,
            latency_s=outcome.latency_s, cost_usd=cost,
        )  # fmt: skip

    def _copy(self, cell: Cell, first: ResultRow, response_id: int | None) -> ResultRow:
        """The row of a cell identical to one already answered in this run."""
        if first.status == "ok":
            return self._row(cell, "ok", response_id=response_id, cached=True)
        return self._row(
            cell, "error", attempts=(), error_type=first.error_type,
            http_status=first.http_status, error=first.error, cost_usd=None,
        )  # fmt: skip


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to raise for a failed task group: promptgrid's own first, then anything else
    (a bug), never a bare group."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    ours = [e for e in leaves if isinstance(e, PromptgridError)]
    others = [e for e in leaves if not isinstance(e, asyncio.CancelledError)]
    return (ours or others or leaves)[0]
