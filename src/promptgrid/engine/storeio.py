"""The store's work during a run, off the event loop thread, batched.

SQLite calls block their thread — for as long as another connection holds a lock, up to the busy
timeout. On the event loop that would freeze every call in flight and their timeouts, so during a
run every store operation goes through :class:`StoreIO`: one thread with a connection of its own,
fed by one pump task. Workers ask for claims and hand over result rows; the pump gathers whatever
is waiting into one transaction (results that arrive alone wait ``BATCH_WINDOW_S`` for company:
a commit costs ~150 us of CPU) and answers each worker through its future.

The pump runs in the scheduler's task group. If a transaction fails (disk full, a lock held too
long, damaged pages), the pump raises the :class:`~promptgrid.errors.StoreError`, the task group
cancels every worker, and the run ends with that error within a transaction's time: nobody is
left waiting on work that nobody does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..store import Owner, ResultRow, Store

T = TypeVar("T")

#: How long a result that arrives alone waits for others to share its commit. Over the network
#: results trickle in one by one; a few milliseconds let one commit carry several. A result is
#: counted only once committed, so a crash in this window loses it as it would lose a call still
#: in flight.
BATCH_WINDOW_S = 0.005

Claim = int | bool | str  # an answer's id, True (ours to send), or the owner already sending it


class StoreIO:
    """Claims, result writes and other store calls for one run, on a thread of their own.

    ``after``: which stored answers count as cached (newer than this response id); ``None``:
    none do (a claim then only guards against another process sending the same request).
    ``on_commit`` is told each committed batch of rows, with their response ids.
    """

    def __init__(
        self,
        path: Path,
        owner: Owner,
        *,
        after: int | None,
        on_commit: Callable[[Sequence[ResultRow], Sequence[int | None]], None] | None = None,
    ) -> None:
        self.owner = owner
        self.after = after
        self._path = path
        self.on_commit = on_commit
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "promptgrid-store")
        self._store: Store | None = None
        self._claims: list[tuple[str, asyncio.Future[Claim]]] = []
        self._rows: list[tuple[ResultRow, asyncio.Future[int | None]]] = []
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ for workers

    async def claim(self, cell_id: str) -> Claim:
        """An answer already stored, or the request is now ours to send, or whose it is."""
        future: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        self._claims.append((cell_id, future))
        self._wake.set()
        return await future

    async def write(self, row: ResultRow) -> int | None:
        """Commit a finished cell; returns its response id once it is durable."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._rows.append((row, future))
        self._wake.set()
        return await future

    async def call(self, method: Callable[..., T], *args: Any) -> T:
        """Run ``method(store, *args)`` on the store's thread (heartbeats, status changes)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._with_store, method, args)

    # ------------------------------------------------------------------ the pump

    async def pump(self) -> None:
        """Commit claims and rows as they come, until cancelled (run it in the task group)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._rows and not self._claims:
                await asyncio.sleep(BATCH_WINDOW_S)  # let a lone result find company
            claims, self._claims = self._claims, []
            rows, self._rows = self._rows, []
            if not claims and not rows:
                continue
            try:
                answers, ids = await loop.run_in_executor(
                    self._thread, self._commit, [c for c, _ in claims], [r for r, _ in rows]
                )
            except BaseException as exc:
                waiting: list[asyncio.Future[Any]] = [f for _, f in claims] + [f for _, f in rows]
                for future in waiting:
                    if not future.done():
                        future.cancel()
                raise exc from None
            for (_, claim_future), answer in zip(claims, answers, strict=True):
                if not claim_future.done():
                    claim_future.set_result(answer)
            if self.on_commit is not None and rows:
                self.on_commit([r for r, _ in rows], ids)
            for (_, row_future), response_id in zip(rows, ids, strict=True):
                if not row_future.done():
                    row_future.set_result(response_id)

    def close(self) -> None:
        """Close the thread's connection and the thread (after the pump has stopped)."""
        future = self._thread.submit(self._close_store)
        future.result()
        self._thread.shutdown(wait=True)

    # ------------------------------------------------------------------ on the thread

    def _open(self) -> Store:
        if self._store is None:
            self._store = Store(self._path, create=False)
        return self._store

    def _with_store(self, method: Callable[..., T], args: tuple[Any, ...]) -> T:
        return method(self._open(), *args)

    def _commit(
        self, claims: list[str], rows: list[ResultRow]
    ) -> tuple[list[Claim], list[int | None]]:
        store = self._open()
        ids = store.write(rows, self.owner) if rows else []
        answers = store.claim(claims, self.owner, after=self.after) if claims else []
        return answers, ids

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
