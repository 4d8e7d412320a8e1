"""Batch mode in a run's session.

A session of a run (``runner.execute``) that has batch endpoints, or chunks left by an earlier
session, opens a :class:`BatchPhase`: one :class:`~promptgrid.engine.batch.driver.Batcher` over a
Batch API client per endpoint concerned. ``before`` goes first — chunks left between two
steps are driven on, then the batch endpoints' new cells are planned and submitted — so the
cells spoken for are known before the online endpoints run; ``after`` polls and collects
(once, or until every batch is in with ``wait``).

A run with batches in flight is ``submitted``: not finished, collectable
(``promptgrid batch collect``), resumable by the same ``run`` command. The ``batch status``
and ``batch cancel`` commands are in :mod:`promptgrid.operations`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Any

from ...credentials import secrets_of
from ...errors import BudgetExceeded, ProviderError
from ...providers import open_batch_client
from ...store import Store, leases, owners
from ...store import batch as batchstore
from ..storeio import StoreIO
from .driver import Batcher, BatchSummary

if TYPE_CHECKING:
    from ..._sync import RunHandle
    from ...config import RunConfig
    from ...providers.batch import BatchClient
    from ...store import RunInfo

__all__ = ["BatchPhase"]


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
