"""Batch mode in a run's session, and the batch commands: status and cancel.

A session of a run (``runner.execute``) that has batch endpoints, or chunks left by an earlier
session, opens a :class:`BatchPhase`: one :class:`~promptgrid.engine.batch.driver.Batcher` over a
Batch API client per endpoint concerned. ``before`` goes first — chunks left between two
steps are driven on, then the batch endpoints' new cells are planned and submitted — so the
cells spoken for are known before the online endpoints run; ``after`` polls and collects
(once, or until every batch is in with ``wait``).

A run with batches in flight is ``submitted``: not finished, collectable
(``promptgrid batch collect``), resumable by the same ``run`` command. :func:`status` reads a
run's chunks and asks the provider how each batch stands without writing anything (it needs
no lease); :func:`cancel` asks the provider to stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...credentials import secrets_of
from ...errors import BudgetExceeded, ProviderError, RetryableError, UsageError
from ...providers import open_batch_client
from ...store import Owner, Store, leases, owners
from ...store import batch as batchstore
from ...store.batch import Chunk
from ..storeio import StoreIO
from .driver import Batcher, BatchSummary

if TYPE_CHECKING:
    from ..._sync import RunHandle
    from ...config import RunConfig
    from ...providers.batch import BatchClient
    from ...store import RunInfo

__all__ = ["BatchPhase", "BatchRow", "cancel", "status"]


class BatchPhase:
    """The batch part of one session of a run (see the module docstring)."""

    def __init__(self, batcher: Batcher, clients: dict[str, BatchClient]) -> None:
        self.batcher = batcher
        self.clients = clients

    @classmethod
    def open(
        cls,
        store: Store,
        config: RunConfig,
        run: RunInfo,
        io: StoreIO,
        *,
        spent: float,
        note: Callable[[str], None] | None,
    ) -> BatchPhase | None:
        """The phase, if the session has batch endpoints or the run has chunks to follow."""
        chunks = batchstore.chunks(store, run.run_id)
        names = set(config.batch_endpoints) | {c.endpoint for c in chunks if c.live}
        if not names:
            return None
        clients = {name: open_batch_client(config.endpoints[name]) for name in sorted(names)}
        keys = {
            name: secrets_of(config.endpoints[name].api_key(), config.endpoints[name].base_url)
            for name in names
        }
        batcher = Batcher(io, config, run, clients, keys=keys, note=note, spent=spent)
        return cls(batcher, clients)

    @property
    def summary(self) -> BatchSummary:
        """What the phase did."""
        return self.batcher.summary

    async def before(self, skip: Container[int], handle: RunHandle, *, submit: bool) -> None:
        """Drive chunks left between two steps, then (``submit``) plan and submit new ones.
        A budget, authentication or provider failure stops the phase (``summary.stopped_by``)."""
        handle.scheduler = self.batcher
        if handle.stops:
            self.batcher.stop()
        await self._guard(self.batcher.submit(skip) if submit else self.batcher.advance())

    async def after(self, handle: RunHandle, *, wait: bool) -> None:
        """Poll the batches and collect the ended ones; with ``wait``, until none is left."""
        handle.scheduler = self.batcher
        if handle.stops:
            self.batcher.stop()
        if self.summary.stopped_by is not None or self.batcher.stopping:
            return
        await self._guard(self.batcher.wait() if wait else self._once())

    async def _once(self) -> None:
        await self.batcher.refresh()
        await self.batcher.collect()

    async def _guard(self, step: Any) -> None:
        beat = asyncio.ensure_future(self._heartbeat())
        try:
            await step
        except (ProviderError, BudgetExceeded) as exc:
            self.summary.stopped_by = exc
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await self.batcher.live()

    async def _heartbeat(self) -> None:
        """Keep the run's lease while uploading, waiting or collecting (which may take hours):
        another process must not take the run over meanwhile."""
        io = self.batcher.io
        while True:
            await asyncio.sleep(owners.HEARTBEAT_S)
            await io.call(leases.heartbeat, io.owner)

    async def aclose(self) -> None:
        """Close the clients and drop this session's files."""
        self.batcher.close()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()


@dataclass(frozen=True)
class BatchRow:
    """One batch of a run, as ``promptgrid batch status`` shows it."""

    run_id: str
    chunk: int
    endpoint: str
    state: str  #: the local state (see :mod:`promptgrid.store.batch`)
    batch_id: str | None
    status: str | None  #: the provider's status
    requests: int
    cells: int
    completed: int | None
    failed: int | None
    total: int | None
    bytes: int
    file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    planned_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """As a mapping (a DataFrame row)."""
        return asdict(self)


def _row(chunk: Chunk) -> BatchRow:
    return BatchRow(
        chunk.run_id, chunk.chunk, chunk.endpoint, chunk.state, chunk.batch_id,
        chunk.batch_status, chunk.requests, chunk.cells, chunk.completed, chunk.failed,
        chunk.total, chunk.bytes, chunk.file_id, chunk.output_file_id, chunk.error_file_id,
        chunk.planned_at, chunk.updated_at,
    )  # fmt: skip


async def status(config: RunConfig, run: RunInfo, *, poll: bool = True) -> list[BatchRow]:
    """Each batch of a run: as recorded, and (``poll``) as the provider says it stands now.
    Writes nothing (the run's owner, if any, records what it sees)."""
    with Store.in_dir(config.results_dir, readonly=True) as store:
        chunks = batchstore.chunks(store, run.run_id)
    if not chunks:
        raise UsageError(f"run {run.run_id} has no batches (it was not run with --batch)")
    rows = [_row(c) for c in chunks]
    if not poll:
        return rows
    wanted = {c.endpoint for c in chunks if c.state == "submitted" and c.batch_id}
    clients = {name: open_batch_client(config.endpoints[name]) for name in sorted(wanted)}
    try:
        for i, chunk in enumerate(chunks):
            if chunk.endpoint not in clients or chunk.batch_id is None:
                continue
            if chunk.state != "submitted" or chunk.batch_status in batchstore.TERMINAL:
                continue
            with contextlib.suppress(RetryableError):  # a flaky poll shows the recorded state
                now = await clients[chunk.endpoint].retrieve(chunk.batch_id)
                rows[i] = BatchRow(**{
                    **rows[i].to_dict(), "status": now.status, "completed": now.completed,
                    "failed": now.failed, "total": now.total,
                })  # fmt: skip
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
    return rows


async def cancel(config: RunConfig, run: RunInfo, owner: Owner) -> list[BatchRow]:
    """Cancel a run's batches (the run's lease is held meanwhile); see
    :meth:`Batcher.cancel`. Collect afterwards: what ran is kept."""
    with Store.in_dir(config.results_dir, create=False) as store:
        chunks = batchstore.chunks(store, run.run_id)
        if not chunks:
            raise UsageError(f"run {run.run_id} has no batches (it was not run with --batch)")
        leases.acquire(store, run.run_id, owner)
        before = run.status if run.status != "running" else "interrupted"
        io = StoreIO(Path(store.path), owner, after=0)
        names = {c.endpoint for c in chunks if c.live}
        clients = {name: open_batch_client(config.endpoints[name]) for name in sorted(names)}
        batcher = Batcher(io, config, run, clients)
        try:
            return [_row(c) for c in await batcher.cancel()]
        finally:
            batcher.close()
            for client in clients.values():
                with contextlib.suppress(Exception):
                    await client.aclose()
            io.close()
            with contextlib.suppress(Exception):
                leases.release(store, run.run_id, owner, before)
