"""Batch mode: a run's requests through the providers' Batch APIs, every step in the store.

The second driver over the same cells as the scheduler (same cell ids, same request bodies,
same store tables), in four moves, each safe to interrupt at any moment:

**Plan and submit** (:meth:`Batcher.submit`). The batch endpoints' share of the grid is walked
lazily; a cell already answered in the store is a cached row at once (as online), a cell whose
request another cell of the run already carries joins that request's chunk, and the rest
become lines of a request file on disk (:mod:`.files`), cut at ``max_requests`` and
``max_bytes``. Each full file is recorded as a chunk with its cells, then driven through its
remote steps, each written ahead and after (:mod:`promptgrid.store.batch`):
``planned -> uploading -> uploaded (file id) -> creating -> submitted (batch id)``.

**Recover.** A chunk found between steps by a later process goes on from where it stands; one
found ``uploading`` first looks for its file by its unique name, one found ``creating`` for
its batch by metadata (``promptgrid_run``, ``promptgrid_chunk``), so a step that happened but
was never recorded is not done twice. A file gone from disk is rebuilt from the chunk's cells.

**Poll** (:meth:`Batcher.refresh`, :meth:`Batcher.wait`): each batch's status and request
counts, seconds to a minute apart (backoff while nothing changes; the sleep is injectable).

**Collect** (:meth:`Batcher.collect`). An ended batch (completed, failed, expired, cancelled)
has its output and error files downloaded and joined to its cells by ``custom_id``, in grid
order, and committed through the run's store writer (``StoreIO.write``, the commit path every
row takes). A request that failed is an error row; one the batch never ran (expired,
cancelled, failed validation) is an error row of type ``batch_expired``, ``batch_cancelled``
or ``batch_failed`` that ``retry`` sends again. A collection cut short is resumed: rows
already written from this batch are skipped. Then the chunk is ``collected`` and its remote
files deleted.

**Budget.** With a cap, a chunk's worst case (every prompt at one token per byte, every answer
at its limit, at batch prices) is reserved until it is collected; a request that would take
the spend, the reservations and the file being built past the cap is not submitted: the file
so far is, and the run stops (``BudgetExceeded``), resumable with a higher cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying

from ...errors import BatchUnknown, BudgetExceeded, FatalError, ProviderError, RetryableError
from ...grid import Cell, expand
from ...money import usd
from ...providers.base import Completion
from ...providers.batch import BatchClient, RemoteBatch
from ...store import Owner, ResultRow, Store
from ...store import batch as batchstore
from ...store.batch import Chunk
from ..attempts import Sleep, retrying
from ..budget import vet, worst_cost
from ..storeio import StoreIO
from .files import ChunkFile, NotIn, encode, rebuild
from .outputs import Outputs, answer_row, copy_row, unanswered

if TYPE_CHECKING:
    from ...config import RunConfig
    from ...providers.translate import Secrets
    from ...store import RunInfo

__all__ = ["POLL_MAX_S", "POLL_MIN_S", "BatchSummary", "Batcher"]

#: The first wait between two polls; it grows while nothing changes, up to ``POLL_MAX_S``.
POLL_MIN_S = 5.0
POLL_MAX_S = 60.0
POLL_GROWTH = 1.5
#: How the driver waits between polls and retries, unless given another ``sleep``.
SLEEP: Sleep = asyncio.sleep
#: Cells looked up in the cache at once while planning.
PLAN_BLOCK = 1000
#: Rows committed at once while collecting (a commit is the slowest part: fewer, bigger ones).
COMMIT_ROWS = 5000
#: A request's line is being built into the chunk in hand (not yet recorded).
_HERE = -1


@dataclass
class BatchSummary:
    """What batch mode did in this session, and what stands."""

    submitted: int = 0  #: chunks submitted in this session
    requests: int = 0  #: requests in them
    cached: int = 0  #: cells answered from the store instead
    collected: int = 0  #: chunks collected in this session
    ok: int = 0  #: rows collected
    errors: int = 0
    spent: float = 0.0
    error_types: dict[str, int] = field(default_factory=dict)
    stopped_by: ProviderError | BudgetExceeded | None = None
    interrupted: bool = False
    live: int = 0  #: chunks not yet collected at the end of the session
    collect_s: float = 0.0  #: seconds spent collecting (downloads, reading, committing)
    unreadable: int = 0  #: output lines that name no request of theirs
    unbelievable_usage: int = 0  #: answers whose usage was missing or not believed


def metadata(run_id: str, chunk: int, experiment: str) -> dict[str, str]:
    """The metadata a chunk's batch carries, by which a lost batch id is found again."""
    return {
        "promptgrid_run": run_id,
        "promptgrid_chunk": str(chunk),
        "promptgrid_experiment": experiment[:512],
    }


class Batcher:
    """A run's batches: plan, submit, recover, poll, collect, cancel (see the module doc).

    ``clients`` maps each batch endpoint's name to its :class:`BatchClient`; ``sleep`` waits
    between polls and retries (tests inject one that returns at once); ``note`` is told one
    line of progress at a time (submissions, status changes, collections)."""

    def __init__(
        self,
        io: StoreIO,
        config: RunConfig,
        run: RunInfo,
        clients: Mapping[str, BatchClient],
        *,
        keys: Mapping[str, Secrets] | None = None,
        sleep: Sleep | None = None,
        note: Callable[[str], None] | None = None,
        spent: float = 0.0,
    ) -> None:
        self.io = io
        self.config = config
        self.run = run
        self.clients = clients
        self.keys = keys or {}
        self.sleep = sleep or SLEEP
        self.note = note or (lambda text: None)
        self.spent = spent  #: USD the run has paid (rows), for the budget
        self.summary = BatchSummary()
        self._stopping = asyncio.Event()
        self._files: dict[int, Path] = {}  # chunk -> its request file, built in this session
        self._fresh: set[tuple[int, str]] = set()  # (chunk, state) written, step not yet tried
        self._tmp = tempfile.TemporaryDirectory(prefix="promptgrid-batch-")
        self._told = ""  # the last line of progress
        self._reserved = 0.0  # the worst case of the run's chunks not yet collected

    def close(self) -> None:
        """Remove this session's request files."""
        self._tmp.cleanup()

    def stop(self) -> None:
        """Stop at the next safe point: between two remote steps, two polls, two commits.
        Everything done is recorded; the same command goes on from there."""
        self.summary.interrupted = True
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """A stop was asked for."""
        return self._stopping.is_set()

    # ------------------------------------------------------------------ submit

    async def submit(self, skip: Container[int]) -> None:
        """Drive the run's chunks not yet submitted to their batch, then plan and submit the
        batch endpoints' cells that have no row (none in ``skip``) and no chunk yet."""
        await self.advance()
        self._reserved = await self.io.call(batchstore.reserved_cost, self.run.run_id)
        live = await self.io.call(batchstore.live_cells, self.run.run_id)
        seen = {cell_id: chunk for cell_id, chunk in live.values()}
        skipped = _Either(skip, live)
        with _quiet_gc():
            for name in self.config.batch_endpoints:
                if self.stopping:
                    return
                await self._plan(name, skipped, seen)

    async def _plan(self, name: str, skip: Container[int], seen: dict[str, int]) -> None:
        endpoint = self.config.endpoints[name]
        assert endpoint.batch is not None
        building = self._new_file(name)
        block: list[Cell] = []
        for cell in expand(self.config, name, skip):
            block.append(cell)
            if len(block) >= PLAN_BLOCK:
                building = await self._plan_block(name, block, building, seen)
                block = []
                if self.stopping:
                    break
        if block and not self.stopping:
            building = await self._plan_block(name, block, building, seen)
        if self.stopping:  # the file in hand is dropped: nothing of it was recorded
            building.close()
        elif building.requests:
            await self._close(name, building, seen)

    def _new_file(self, name: str) -> ChunkFile:
        limits = self.config.endpoints[name].batch
        assert limits is not None
        path = Path(self._tmp.name) / f"building-{name}-{len(self._files)}.jsonl"
        return ChunkFile(path, limits)

    async def _plan_block(
        self, name: str, block: list[Cell], building: ChunkFile, seen: dict[str, int]
    ) -> ChunkFile:
        endpoint = self.config.endpoints[name]
        url = endpoint.batch_url
        fresh = list(dict.fromkeys(c.cell_id for c in block if c.cell_id not in seen))
        stored = await self._stored(fresh)
        rows: list[ResultRow] = []
        shared: dict[int, list[tuple[int, str]]] = {}
        try:
            for cell in block:
                cell_id = cell.cell_id
                chunk = seen.get(cell_id)
                if chunk is not None:  # its request is a line already: this cell shares it
                    if chunk == _HERE:
                        building.share(cell.index, cell_id)
                    else:
                        shared.setdefault(chunk, []).append((cell.index, cell_id))
                    continue
                answer = stored.get(cell_id)
                if answer is not None:
                    rows.append(_cached_row(self.run.run_id, cell, answer))
                    continue
                line = encode(cell, url)
                if building.too_big(line):
                    rows.append(_too_big_row(self.run.run_id, cell, len(line), building))
                    continue
                if not building.fits(line):
                    await self._close(name, building, seen)
                    building = self._new_file(name)
                worst = worst_cost(endpoint.pricing, cell.request, batch=True)
                await self._check_budget(name, building, worst, seen)
                building.add(cell.index, cell_id, line, worst)
                seen[cell_id] = _HERE
        finally:  # what was decided is kept, even when the budget stops the planning here
            for chunk, cells in shared.items():
                await self.io.call(batchstore.add_cells, self.run.run_id, chunk, cells)
            if rows:
                await self.io.write(rows)
                self.summary.cached += sum(r.cached for r in rows)
        return building

    async def _stored(self, cell_ids: list[str]) -> dict[str, int]:
        """The stored answers (response ids) of these requests that the run may use."""
        if not cell_ids:
            return {}
        answers = await self.io.call(_look_up, cell_ids, self.io.after)
        return {
            cell_id: answer
            for cell_id, answer in zip(cell_ids, answers, strict=True)
            if isinstance(answer, int) and not isinstance(answer, bool)
        }

    async def _check_budget(
        self, name: str, building: ChunkFile, worst: float, seen: dict[str, int]
    ) -> None:
        cap = self.config.max_cost
        if cap is None or self.config.endpoints[name].free:
            return
        reserved = self._reserved
        if self.spent + reserved + building.worst + worst <= cap:
            return
        if building.requests:  # what fits is submitted; the rest waits for a higher cap
            await self._close(name, building, seen)
        raise BudgetExceeded(
            f"the budget is spent: {usd(self.spent)} paid and up to "
            f"{usd(reserved + building.worst)} in batches of {usd(cap)}, and the next "
            f"request could cost up to {usd(worst)}",
            cap=cap,
            spent=self.spent + reserved + building.worst,
            next_worst=worst,
        )

    async def _close(self, name: str, building: ChunkFile, seen: dict[str, int]) -> None:
        """Record the file in hand as a chunk, then submit it."""
        building.close()
        endpoint = self.config.endpoints[name]
        chunk = await self.io.call(
            _record_chunk, self.run.run_id, name, endpoint.batch_url, building
        )
        for cell_id in building.ids:
            seen[cell_id] = chunk.chunk
        self._reserved += building.worst
        path = building.path.with_name(f"chunk-{chunk.chunk}.jsonl")
        building.path.rename(path)
        self._files[chunk.chunk] = path
        building.requests = 0  # emptied: a stop after this never submits it twice
        self._fresh.add((chunk.chunk, chunk.state))
        await self._advance(chunk)

    # ------------------------------------------------------------------ remote steps

    async def advance(self) -> None:
        """Drive every chunk of the run that has no batch yet to one (recovery)."""
        for chunk in await self.io.call(batchstore.chunks, self.run.run_id):
            if chunk.state in ("planned", "uploading", "uploaded", "creating"):
                if self.stopping:
                    return
                await self._advance(chunk)

    async def _advance(self, chunk: Chunk) -> Chunk:
        """Take a chunk through its remote steps to ``submitted``, retrying transient failures
        as online calls are retried (each retry looks before it redoes: the failed attempt may
        have happened)."""
        client = self.clients[chunk.endpoint]
        while chunk.state in ("planned", "uploading", "uploaded", "creating"):
            try:
                async for attempt in self._retrying(self._pause):  # a stop wakes its waits
                    if self.stopping:  # between two steps: the next session goes on from here
                        return chunk
                    with attempt:
                        chunk = await self._step(client, chunk)
            except BatchUnknown:
                raise  # it says what happened and the ways on already
            except ProviderError as exc:
                raise _during(exc, chunk) from None
        if chunk.state == "submitted":
            self.summary.submitted += 1
            self.summary.requests += chunk.requests
            self.note(
                f"batch {chunk.batch_id} submitted: chunk {chunk.chunk}, {chunk.requests:,} "
                f"requests ({chunk.bytes / 1e6:.1f} MB) to {chunk.endpoint}"
            )
        return chunk

    async def _step(self, client: BatchClient, chunk: Chunk) -> Chunk:
        run_id, number = self.run.run_id, chunk.chunk
        # A state written by this process whose step was not tried: nothing to look for.
        fresh = (number, chunk.state) in self._fresh
        self._fresh.discard((number, chunk.state))
        if chunk.state == "planned":
            return await self._set(chunk, state="uploading")
        if chunk.state == "uploading":
            found = None if fresh else await self._find_file(client, chunk)
            if found is None:
                path = await self._file_of(chunk)
                found = await client.upload(path, chunk.filename)
            return await self._set(chunk, state="uploaded", file_id=found)
        if chunk.state == "uploaded":
            return await self._set(chunk, state="creating")
        meta = metadata(run_id, number, self.run.experiment)
        batch = None if fresh else await _find_batch(client, chunk, meta)
        if batch is None:
            assert chunk.file_id is not None
            batch = await client.create(chunk.file_id, chunk.url, meta)
        self._files.pop(number, None)
        return await self._set(chunk, state="submitted", batch_id=batch.id, **_status(batch))

    async def _find_file(self, client: BatchClient, chunk: Chunk) -> str | None:
        """The file an interrupted upload may have made. A server that cannot list its files
        cannot say: the file is uploaded again (a copy that did arrive stays unused there;
        files cost nothing, and no batch is made from it), and the run goes on."""
        try:
            return await client.find_file(chunk.filename, chunk.step_at)
        except ProviderError as exc:
            if exc.http_status not in _NO_LISTING:
                raise
            status = exc.http_status
        self.note(
            f"the server cannot list its files (HTTP {status}): whether request file "
            f"{chunk.filename} arrived before is unknown, so it is uploaded again (a copy that "
            "did arrive stays unused at the provider)"
        )
        return None

    async def _set(self, chunk: Chunk, **fields: Any) -> Chunk:
        update = functools.partial(batchstore.update_chunk, **fields)
        updated = await self.io.call(update, self.run.run_id, chunk.chunk)
        if "state" in fields:
            self._fresh.add((updated.chunk, updated.state))
        return updated

    async def _file_of(self, chunk: Chunk) -> Path:
        """The chunk's request file: the one built in this session, or rebuilt from its
        cells."""
        path = self._files.get(chunk.chunk)
        if path is not None and path.exists():
            return path
        path = Path(self._tmp.name) / f"chunk-{chunk.chunk}.jsonl"
        cells = await self.io.call(batchstore.chunk_cells, self.run.run_id, chunk.chunk)
        walked = expand(self.config, chunk.endpoint, NotIn(cells))
        requests, size = await asyncio.to_thread(rebuild, walked, chunk.url, path)
        if (requests, size) != (chunk.requests, chunk.bytes):
            raise FatalError(
                f"chunk {chunk.chunk} of run {self.run.run_id} rebuilds as {requests} requests "
                f"and {size} bytes, not the {chunk.requests} and {chunk.bytes} planned"
            )
        self._files[chunk.chunk] = path
        return path

    def _retrying(self, sleep: Sleep) -> AsyncRetrying:
        """The online calls' retry policy (:func:`..attempts.retrying`) for one remote step:
        the server's ``retry_after``, else backoff with jitter; waits through ``sleep``."""
        retry = self.config.retry
        return retrying(max_attempts=retry.max_attempts, max_wait_s=retry.max_wait_s, sleep=sleep)

    # ------------------------------------------------------------------ poll

    async def refresh(self) -> list[Chunk]:
        """Ask the provider how each submitted batch stands; record it. A transient failure
        leaves a batch as last seen (the next poll asks again)."""
        out = []
        for chunk in await self.io.call(batchstore.chunks, self.run.run_id):
            if chunk.state == "submitted" and chunk.batch_status not in batchstore.TERMINAL:
                assert chunk.batch_id is not None
                try:
                    batch = await self.clients[chunk.endpoint].retrieve(chunk.batch_id)
                except RetryableError:
                    out.append(chunk)
                    continue
                chunk = await self._set(chunk, **_status(batch))
            out.append(chunk)
        self._tell(out)
        return out

    def _tell(self, chunks: list[Chunk]) -> None:
        """One line of progress — batches by status, requests done and failed — when it
        changed since the last poll."""
        out = [c for c in chunks if c.state == "submitted"]  # collected ones have said it all
        if not out:
            return
        statuses = Counter(c.batch_status or "submitted" for c in out)
        done = sum(c.completed or 0 for c in out)
        failed = sum(c.failed or 0 for c in out)
        total = sum(c.total or c.requests for c in out)
        line = (
            "batches: " + ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
            + f" · {done:,}/{total:,} requests done, {failed:,} failed"
        )  # fmt: skip
        if line != self._told:
            self._told = line
            self.note(line)

    async def wait(self) -> None:
        """Poll and collect until no batch of the run is left, or a stop. Polls are
        ``POLL_MIN_S`` apart, growing by ``POLL_GROWTH`` while nothing changes, up to
        ``POLL_MAX_S``."""
        delay = POLL_MIN_S
        while not self.stopping:
            before = self._told
            await self.advance()
            await self.refresh()
            await self.collect()
            if not await self.live():
                return
            delay = POLL_MIN_S if self._told != before else min(delay * POLL_GROWTH, POLL_MAX_S)
            await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on a stop."""
        sleeping = asyncio.ensure_future(self.sleep(seconds))
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeping, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeping, stopped):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(sleeping, stopped, return_exceptions=True)

    async def live(self) -> int:
        """Chunks of the run not yet collected (and remember it in the summary)."""
        chunks = await self.io.call(batchstore.chunks, self.run.run_id)
        self.summary.live = sum(c.live for c in chunks)
        return self.summary.live

    # ------------------------------------------------------------------ collect

    async def collect(self) -> None:
        """Collect every ended batch of the run (see the module doc)."""
        ended = [c for c in await self.io.call(batchstore.chunks, self.run.run_id) if c.ended]
        if ended:
            await self.io.call(batchstore.bulk_writes, True)
            try:
                for chunk in ended:
                    if self.stopping:
                        break
                    await self._collect(chunk)
            finally:
                await self.io.call(batchstore.bulk_writes, False)
        await self.live()

    async def _collect(self, chunk: Chunk) -> None:
        started = time.perf_counter()
        try:
            with _quiet_gc():
                await self._collect_chunk(chunk)
        finally:
            self.summary.collect_s += time.perf_counter() - started

    async def _collect_chunk(self, chunk: Chunk) -> None:
        run_id = self.run.run_id
        batch_id = chunk.batch_id  # None: cancelled before it became a batch
        cells = await self.io.call(batchstore.chunk_cells, run_id, chunk.chunk)
        todo = cells
        firsts: dict[str, batchstore.First] = {}
        if batch_id is not None:  # rows already written from this batch are not written again
            done = await self.io.call(batchstore.answered_by, run_id, batch_id)
            todo = {idx: cell_id for idx, cell_id in cells.items() if idx not in done}
            firsts = await self.io.call(batchstore.firsts, run_id, batch_id)
        if todo:
            with tempfile.TemporaryDirectory(dir=self._tmp.name) as folder:
                paths = await self._download(chunk, Path(folder))
                api = "responses" if chunk.url.endswith("/responses") else "chat"
                key = self.keys.get(chunk.endpoint, "")
                with Outputs(paths, api, key) as outputs:
                    complete = await self._write_rows(chunk, todo, outputs, firsts)
                    self.summary.unreadable += outputs.unreadable
            if not complete:
                return  # stopped between two commits: the rest is collected next time
        await self._set(chunk, state="collected")
        self.summary.collected += 1
        self.note(
            f"batch {batch_id or '(never created)'} collected: chunk {chunk.chunk}, "
            f"{len(cells):,} cells"
        )
        client = self.clients.get(chunk.endpoint)
        for file_id in (chunk.file_id, chunk.output_file_id, chunk.error_file_id):
            if file_id and client is not None:  # the store holds the answers now
                with contextlib.suppress(ProviderError):
                    await client.delete(file_id)

    async def _download(self, chunk: Chunk, folder: Path) -> list[Path]:
        client = self.clients[chunk.endpoint]
        paths = []
        for name, file_id in (("output", chunk.output_file_id), ("errors", chunk.error_file_id)):
            if not file_id:
                continue
            path = folder / f"{name}.jsonl"
            async for attempt in self._retrying(self.sleep):
                with attempt:
                    await client.download(file_id, path)
            paths.append(path)
        return paths

    async def _write_rows(
        self,
        chunk: Chunk,
        todo: dict[int, str],
        outputs: Outputs,
        firsts: dict[str, batchstore.First],
    ) -> bool:
        """Commit the rows of the cells in ``todo``, in grid order and in blocks; the cells
        sharing a request answered first get theirs last. False if stopped before the end."""
        run_id, batch_id = self.run.run_id, chunk.batch_id
        pricing = self.config.endpoints[chunk.endpoint].pricing
        copies: list[Cell] = []
        answered: set[str] = set(firsts)

        def rows() -> Iterator[ResultRow]:
            for cell in expand(self.config, chunk.endpoint, NotIn(todo)):
                if cell.cell_id in answered:
                    copies.append(cell)
                    continue
                answered.add(cell.cell_id)
                outcome = outputs.get(cell.cell_id)
                if outcome is None:
                    outcome = unanswered(chunk.batch_status, chunk.errors)
                elif isinstance(outcome, Completion):
                    outcome, unbelievable = vet(pricing, cell.request, outcome)
                    self.summary.unbelievable_usage += unbelievable
                yield answer_row(cell, outcome, run_id=run_id, batch_id=batch_id, pricing=pricing)

        pending: tuple[list[ResultRow], asyncio.Future[list[int | None]]] | None = None
        for block in _blocks(rows(), COMMIT_ROWS):
            if pending is not None:
                _remember(firsts, *pending[:1], await pending[1])
            if self.stopping:
                return False
            self._count(block)
            # The next block is built while this one commits (SQLite lets go of the GIL).
            pending = (block, asyncio.ensure_future(self.io.write(block)))
        if pending is not None:
            _remember(firsts, *pending[:1], await pending[1])
        if copies:
            block = [copy_row(c, firsts[c.cell_id], run_id=run_id, batch_id=batch_id)
                     for c in copies]  # fmt: skip
            self._count(block)
            await self.io.write(block)
        return True

    def _count(self, rows: list[ResultRow]) -> None:
        for row in rows:
            if row.status == "ok":
                self.summary.ok += 1
                if row.answer is not None and row.cost_usd:
                    self.summary.spent += row.cost_usd
            else:
                self.summary.errors += 1
                key = row.error_type or "unknown"
                self.summary.error_types[key] = self.summary.error_types.get(key, 0) + 1

    # ------------------------------------------------------------------ cancel

    async def cancel(self) -> list[Chunk]:
        """Cancel the run's batches: those at the provider are asked to stop (their finished
        requests are kept); chunks that never became a batch are cancelled here. Collect
        afterwards to turn what ran into rows."""
        out = []
        for chunk in await self.io.call(batchstore.chunks, self.run.run_id):
            if not chunk.live:  # collected: nothing left to stop
                out.append(chunk)
                continue
            client = self.clients[chunk.endpoint]
            if chunk.state == "creating":  # it may have become a batch: look before deciding
                found = await client.find_batch(
                    metadata(self.run.run_id, chunk.chunk, self.run.experiment), chunk.step_at
                )
                if found is not None:
                    chunk = await self._set(
                        chunk, state="submitted", batch_id=found.id, **_status(found)
                    )
            if chunk.state in ("planned", "uploading", "uploaded", "creating"):
                chunk = await self._set(chunk, state="cancelled", batch_status="cancelled")
            elif chunk.state == "submitted" and chunk.batch_status not in batchstore.TERMINAL:
                assert chunk.batch_id is not None
                batch = await client.cancel(chunk.batch_id)
                chunk = await self._set(chunk, **_status(batch))
            out.append(chunk)
        return out


_DOING = {
    "planned": "uploading", "uploading": "uploading", "uploaded": "creating the batch of",
    "creating": "creating the batch of",
}  # fmt: skip


#: What a server without a listing of its files or batches answers ``GET /files``,
#: ``GET /batches``: no such route, no such method, not implemented.
_NO_LISTING = (404, 405, 501)


async def _find_batch(
    client: BatchClient, chunk: Chunk, meta: Mapping[str, str]
) -> RemoteBatch | None:
    """The batch an interrupted creation may have made. A server that cannot list its batches
    cannot say, and creating another could pay for every request twice: the run stops, saying
    how to find out and the ways on."""
    try:
        return await client.find_batch(meta, chunk.step_at)
    except ProviderError as exc:
        if exc.http_status not in _NO_LISTING:
            raise
        labels = ", ".join(f"{k}={v}" for k, v in meta.items() if k != "promptgrid_experiment")
        raise BatchUnknown(
            f"the server cannot list its batches (HTTP {exc.http_status}): whether the batch of "
            f"request file {chunk.filename} was created before is unknown, and creating another "
            f"could pay for its {chunk.requests:,} requests twice. Look for a batch with "
            f"metadata {labels} at the provider: if there is one, wait for it there; if there "
            f"is none, `promptgrid batch cancel {chunk.run_id}` drops the chunk and "
            f"`promptgrid retry {chunk.run_id}` sends its requests again",
            http_status=exc.http_status,
        ) from None


def _during(error: ProviderError, chunk: Chunk) -> ProviderError:
    """``error`` saying which remote step of which chunk failed, and the ways on."""
    error.message = (
        f"{_DOING.get(chunk.state, chunk.state)} request file {chunk.filename} failed: "
        f"{error.message}; the same command tries again (nothing is sent twice), and "
        f"`promptgrid batch cancel {chunk.run_id}` drops what is not submitted"
    )
    error.args = (error.message,)
    return error


def _status(batch: RemoteBatch) -> dict[str, Any]:
    """A batch's status fields as ``update_chunk`` takes them."""
    return {
        "batch_status": batch.status,
        "completed": batch.completed,
        "failed": batch.failed,
        "total": batch.total,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "errors": batch.errors or None,
    }


def _look_up(store: Store, cell_ids: list[str], after: int) -> list[int | bool | str]:
    """For each request, a stored answer's id (newer than ``after``), else True (nothing is
    claimed: a batch's requests are not on the wire, and a claim would not outlive us)."""
    return store.commit([], [(c, False) for c in cell_ids], Owner.me(), after=after)[1]


def _record_chunk(store: Store, run_id: str, name: str, url: str, building: ChunkFile) -> Chunk:
    return batchstore.new_chunk(
        store,
        run_id,
        endpoint=name,
        url=url,
        cells=building.cells,
        requests=building.requests,
        size=building.size,
        worst_cost=building.worst_cost,
    )


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """No cyclic garbage collection while a grid's worth of rows is planned or collected.

    Those rows are acyclic (reference counting frees them), but the indexes held meanwhile
    (every cell id of a run, every line of a batch's output) make each full collection scan
    hundreds of thousands of objects: measured, it more than doubled the time to read a line.
    Cycles made meanwhile are collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _remember(
    firsts: dict[str, batchstore.First], rows: list[ResultRow], ids: list[int | None]
) -> None:
    """Note the rows a batch answered itself (for the cells that share their requests)."""
    for row, response_id in zip(rows, ids, strict=True):
        if not row.cached:
            firsts[row.cell_id] = (row.status, response_id, row.error_type, row.http_status,
                                   row.error)  # fmt: skip


def _cached_row(run_id: str, cell: Cell, response_id: int) -> ResultRow:
    return ResultRow(
        run_id=run_id, idx=cell.index, cell_id=cell.cell_id, prompt=cell.prompt,
        vars=dict(cell.vars), params=dict(cell.params), repeat=cell.repeat,
        request=cell.request.record(), status="ok", attempts=(), response_id=response_id,
        latency_s=0.0, cost_usd=0.0, cached=True,
    )  # fmt: skip


def _too_big_row(run_id: str, cell: Cell, size: int, building: ChunkFile) -> ResultRow:
    message = (
        f"this request is {size:,} bytes as a batch line, over the file limit of "
        f"{building.limits.max_bytes:,} (batch: max_bytes); send it online"
    )
    attempt = {"number": 1, "status": "error", "error_type": "bad_request", "error": message}
    return ResultRow(
        run_id=run_id, idx=cell.index, cell_id=cell.cell_id, prompt=cell.prompt,
        vars=dict(cell.vars), params=dict(cell.params), repeat=cell.repeat,
        request=cell.request.record(), status="error", attempts=[attempt],
        error_type="bad_request", error=message, latency_s=None, cost_usd=None,
    )  # fmt: skip


def _blocks(rows: Iterator[ResultRow], size: int) -> Iterator[list[ResultRow]]:
    block: list[ResultRow] = []
    for row in rows:
        block.append(row)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


class _Either(Container[int]):
    """Cells in either of two sets."""

    def __init__(self, first: Container[int], second: Container[int]) -> None:
        self.first = first
        self.second = second

    def __contains__(self, index: object) -> bool:
        return index in self.first or index in self.second
