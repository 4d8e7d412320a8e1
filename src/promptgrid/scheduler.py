"""The scheduler: a bounded pool of workers pulling cells lazily, one writer committing results.

Each worker takes the next cell from the (lazy) grid and either answers it from the store (the
cache), waits for an identical request already in flight in this run, or calls its endpoint
through ``retry.call_with_retry`` (limits and retries live there). Finished cells go to a single
writer task that commits everything that is ready in one transaction and only then counts it:
a result is durable before it is counted.

Stopping: ``stop()`` (first Ctrl-C, or an auth/quota failure) stops admitting new cells; calls
in flight may finish within ``grace_s`` and are then cancelled, leaving their cells pending.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ProviderError
from .grid import Cell
from .limits import EndpointLimiter
from .pricing import cost_usd
from .progress import NullProgress, Progress
from .providers.base import Completion, Provider, Request
from .retry import Outcome, call_with_retry
from .spec import RetryPolicy
from .store import Answer, ResultRow, Store

Sleep = Callable[[float], Awaitable[None]]
#: How long the writer lets results gather before committing a lone one. Over the network
#: results trickle in one by one and a commit costs ~150 us of CPU; a few milliseconds let one
#: commit carry several. A result is counted only once committed, so a crash in this window
#: loses it as it would lose a call still in flight.
BATCH_WINDOW_S = 0.005


@dataclass
class Endpoint:
    """A provider and the limiter that guards it."""

    provider: Provider
    limiter: EndpointLimiter
    kind: str = "openai"  # the provider type, for pricing
    workers: int | None = None  # this endpoint's own pool (default: the scheduler's concurrency)


@dataclass
class Summary:
    """What a run of the scheduler did."""

    ok: int = 0
    errors: int = 0
    cached: int = 0
    stopped_by: ProviderError | None = None
    interrupted: bool = False
    error_types: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Watched:
    """A provider seen through the scheduler, which notes when a request is on the wire."""

    scheduler: Scheduler
    provider: Provider

    async def complete(self, request: Request) -> Completion:
        """Send through the scheduler's bookkeeping."""
        return await self.scheduler._send(self.provider, request)

    async def aclose(self) -> None:
        """The scheduler does not own the provider."""


@dataclass(frozen=True)
class _Shared:
    """The outcome of a cell that identical cells of the same run reuse."""

    response_id: int | None
    row: ResultRow


class Scheduler:
    """Runs cells concurrently and commits each result as it arrives."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        endpoints: Mapping[str, Endpoint],
        *,
        concurrency: int,
        retry: RetryPolicy,
        use_cache: bool = True,
        progress: Progress | None = None,
        sleep: Sleep = asyncio.sleep,
        grace_s: float = 5.0,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.endpoints = endpoints
        self.concurrency = concurrency
        self.retry = retry
        self.use_cache = use_cache
        self.progress = progress or NullProgress()
        self.sleep = sleep
        self.grace_s = grace_s
        self.summary = Summary()
        self._stopping = asyncio.Event()
        # Bounded, so that a fast provider (echo, a cache hit) cannot run ahead of the writer:
        # memory then grows with concurrency, not with the size of the grid.
        self._queue: asyncio.Queue[tuple[ResultRow, asyncio.Future[_Shared] | None]] = (
            asyncio.Queue(
                maxsize=max(
                    256, 4 * concurrency, *(4 * (e.workers or 0) for e in endpoints.values())
                )
            )
        )
        self._inflight: dict[str, asyncio.Future[_Shared]] = {}
        self._failure: BaseException | None = None
        self._calling: set[asyncio.Task[Any]] = set()  # in call_with_retry
        self._sending: set[asyncio.Task[Any]] = set()  # in provider.complete: on the wire
        self._watched = {name: _Watched(self, e.provider) for name, e in endpoints.items()}

    def stop(self) -> None:
        """Stop admitting cells; calls in flight get ``grace_s`` to finish.

        Cells still waiting for admission or for a retry's backoff are cancelled at once:
        nothing of theirs is on the wire, so they stay pending for a resume.
        """
        self.summary.interrupted = self.summary.stopped_by is None
        self._stopping.set()
        for task in self._calling - self._sending:
            task.cancel()

    async def execute(self, cells: Iterable[Cell] | Mapping[str, Iterable[Cell]]) -> Summary:
        """Run every cell, then return a summary (filter out resumed cells before).

        Given one stream per endpoint (a mapping from provider name to its cells), each endpoint
        gets its own pool of workers, so an endpoint that is paused by a 429 or slow to answer
        never holds up the others.
        """
        streams = cells if isinstance(cells, Mapping) else {None: cells}
        writer = asyncio.create_task(self._writer())
        workers = []
        for name, stream in streams.items():
            source = iter(stream)
            size = (self.endpoints[name].workers if name else None) or self.concurrency
            workers += [asyncio.create_task(self._worker(source)) for _ in range(size)]
        # return_exceptions: one cancelled worker must not end the others' grace period.
        gather = asyncio.gather(*workers, return_exceptions=True)
        outcomes: list[Any] = []
        try:
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait([gather, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not gather.done():  # stopping: give calls in flight a grace period
                await asyncio.wait([gather], timeout=self.grace_s)
            stopping.cancel()
        finally:
            for task in workers:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                outcomes = await gather
            await self._queue.join()
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
        if self._failure is not None:
            raise self._failure
        for outcome in outcomes:
            if isinstance(outcome, Exception):  # a bug, not a stop: say so
                raise outcome
        return self.summary

    async def _worker(self, cells: Iterable[Cell]) -> None:
        for cell in cells:  # a shared iterator: next() never awaits, so workers cannot collide
            if self._stopping.is_set():
                return
            await self._run_cell(cell)

    async def _run_cell(self, cell: Cell) -> None:
        if self.use_cache and (response_id := self.store.cached_answer(cell.cell_id)):
            await self._queue.put((self._row(cell, "ok", response_id=response_id), None))
            return
        if (first := self._inflight.get(cell.cell_id)) is not None:
            shared = await asyncio.shield(first)
            await self._queue.put((self._copy(cell, shared), None))
            return
        done: asyncio.Future[_Shared] = asyncio.get_running_loop().create_future()
        self._inflight[cell.cell_id] = done
        try:
            outcome = await self._call(cell)
        except BaseException:
            self._forget(cell.cell_id, done)
            raise
        error = outcome.error
        if error is not None and error.stops_run:
            # Auth or quota: no other call can succeed. The cell stays pending (resumable).
            if self.summary.stopped_by is None:
                self.summary.stopped_by = error
            self._stopping.set()
            self._forget(cell.cell_id, done)
            return
        # Stays in _inflight until the writer has committed it, so that an identical cell
        # arriving meanwhile waits for this answer instead of paying for its own.
        await self._queue.put((self._row_from(cell, outcome), done))

    def _forget(self, cell_id: str, done: asyncio.Future[_Shared]) -> None:
        del self._inflight[cell_id]
        done.cancel()

    async def _call(self, cell: Cell) -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        self._calling.add(task)
        try:
            return await call_with_retry(
                cell.request,
                self._watched[cell.provider],
                self.endpoints[cell.provider].limiter,
                max_attempts=self.retry.max_attempts,
                max_wait_s=self.retry.max_wait_s,
                sleep=self.sleep,
            )
        finally:
            self._calling.discard(task)

    async def _send(self, provider: Provider, request: Request) -> Completion:
        """The provider call, marked as on the wire (so ``stop`` lets it finish)."""
        if self._stopping.is_set():  # a retry after the stop: leave the cell pending
            raise asyncio.CancelledError
        task = asyncio.current_task()
        assert task is not None
        self._sending.add(task)
        try:
            return await provider.complete(request)
        finally:
            self._sending.discard(task)

    # ------------------------------------------------------------------ rows

    def _row(self, cell: Cell, status: str, **fields: Any) -> ResultRow:
        request = {
            "endpoint": cell.request.endpoint,
            "model": cell.request.model,
            "messages": cell.request.messages,
            "params": cell.request.params,
        }
        return ResultRow(
            run_id=self.run_id,
            idx=cell.index,
            cell_id=cell.cell_id,
            prompt=cell.prompt,
            vars=dict(cell.vars),
            params=dict(cell.params),
            repeat=cell.repeat,
            request=request,
            status=status,
            attempts=fields.pop("attempts", ()),
            cached=fields.pop("cached", status == "ok" and "answer" not in fields),
            latency_s=fields.pop("latency_s", 0.0),
            cost_usd=fields.pop("cost_usd", 0.0),
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
        c = outcome.completion
        cost = cost_usd(self.endpoints[cell.provider].kind, c)
        answer = Answer(
            response=c.text,
            finish_reason=c.finish_reason,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            cached_tokens=c.cached_tokens,
            reasoning_tokens=c.reasoning_tokens,
            resolved_model=c.resolved_model,
            request_id=c.request_id,
            latency_s=outcome.latency_s,
            cost_usd=cost,
            rate_limits=dict(c.rate_limits),
        )
        return self._row(
            cell, "ok", attempts=attempts, answer=answer, cached=False,
            latency_s=outcome.latency_s, cost_usd=cost,
        )  # fmt: skip

    def _copy(self, cell: Cell, shared: _Shared) -> ResultRow:
        first = shared.row
        if first.status == "ok":
            return self._row(cell, "ok", response_id=shared.response_id, cached=True)
        return self._row(
            cell, "error", attempts=(), error_type=first.error_type,
            http_status=first.http_status, error=first.error, cost_usd=None,
        )  # fmt: skip

    # ------------------------------------------------------------------ writer

    async def _writer(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            if queue.empty():
                await asyncio.sleep(BATCH_WINDOW_S)
            while not queue.empty():
                batch.append(queue.get_nowait())
            try:
                response_ids = self.store.write([row for row, _ in batch])
            except BaseException as exc:
                self._failure = exc
                self._stopping.set()
                for _ in batch:
                    queue.task_done()
                raise
            errors = cached = 0
            for (row, done), response_id in zip(batch, response_ids, strict=True):
                if done is not None:
                    del self._inflight[row.cell_id]
                    done.set_result(_Shared(response_id, row))
                if row.status == "ok":
                    self.summary.ok += 1
                    cached += row.cached
                else:
                    self.summary.errors += 1
                    errors += 1
                    key = row.error_type or "unknown"
                    self.summary.error_types[key] = self.summary.error_types.get(key, 0) + 1
                queue.task_done()
            self.summary.cached += cached
            self.progress.advance(len(batch), errors=errors, cached=cached)
