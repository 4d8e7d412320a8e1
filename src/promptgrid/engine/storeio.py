"""The store's work during a run, off the event loop thread, batched.

SQLite calls block their thread — for as long as another connection holds a lock, up to the busy
timeout. On the event loop that would freeze every call in flight and their timeouts, so during a
run every store operation goes through :class:`StoreIO`: one thread with a connection of its own,
fed by one pump task. Workers ask about cells (a stored answer? ours to send?) and hand over
finished rows; each round of the pump puts whatever is waiting into one transaction and answers
each worker through its future. Rows that arrive alone wait ``BATCH_WINDOW_S`` for company (a
commit costs ~150 us of CPU); a worker whose answer is asked for never waits for that.

The pump runs in the scheduler's task group. If a transaction fails (disk full, a lock held too
long, damaged pages), the pump raises the :class:`~promptgrid.errors.StoreError`, the task group
cancels every worker, and the run ends with that error within a transaction's time: nobody is
left waiting on work that nobody does.

A transaction that fails because of a row's data, not the store (a value SQLite cannot bind
that no check foresaw: text UTF-8 cannot encode, an integer beyond 64 bits), is a last resort:
its rows are committed one by one, and each row that fails alone is committed as its error row
(:func:`~promptgrid.engine.answers.unstorable`). ``on_commit`` is told the rows as committed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from ..store import Owner, ResultRow, Store
from .answers import unstorable

T = TypeVar("T")

#: How long a result that arrives alone waits for others to share its commit. Over the network
#: results trickle in one by one; a few milliseconds let one commit carry several. A result is
#: counted only once committed, so a crash in this window loses it as it would lose a call still
#: in flight.
BATCH_WINDOW_S = 0.005
#: Rows enough to commit at once, without waiting for the window.
FULL_BATCH = 64

Claim = int | bool | str  # an answer's id, True (ours to send), or the owner already sending it


class StoreIO:
    """Asks, result writes and other store calls for one run, on a thread of their own.

    ``after``: which stored answers count (newer than this response id: 0 for the whole cache,
    the newest id at the run's start without the cache). ``on_commit`` is told each committed
    batch of rows, with their response ids, on the event loop.
    """

    def __init__(
        self,
        path: Path,
        owner: Owner,
        *,
        after: int,
        on_commit: Callable[[Sequence[ResultRow], Sequence[int | None]], None] | None = None,
    ) -> None:
        self.owner = owner
        self.after = after
        self.on_commit = on_commit
        self._path = path
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "promptgrid-store")
        self._store: Store | None = None
        self._asks: list[tuple[str, bool, asyncio.Future[Claim]]] = []
        self._rows: list[tuple[ResultRow, asyncio.Future[int | None]]] = []
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ for workers

    async def ask(self, cell_id: str, *, claim: bool) -> Claim:
        """A stored answer's id; else ``True`` — with ``claim``, the request is now ours to send
        — or the owner (``pid@host``) of another process sending it right now."""
        future: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        self._asks.append((cell_id, claim, future))
        self._wake.set()
        return await future

    def submit(self, row: ResultRow) -> asyncio.Future[int | None]:
        """Hand over a finished cell; the future gives its response id once it is durable."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._rows.append((row, future))
        self._wake.set()
        return future

    async def write(self, rows: list[ResultRow]) -> list[int | None]:
        """Commit ``rows`` now, in one transaction on the store's thread (no pump needed), and
        tell ``on_commit``, as the pump does; their response ids. For a writer that produces
        rows in bulk (a batch's collection) rather than one by one. A row the store could only
        keep as its error row is replaced by it in ``rows``."""
        loop = asyncio.get_running_loop()
        kept, ids, _ = await loop.run_in_executor(self._thread, self._commit, list(rows), [])
        rows[:] = kept
        if self.on_commit is not None and rows:
            self.on_commit(rows, ids)
        return ids

    async def call(self, method: Callable[..., T], *args: Any) -> T:
        """Run ``method(store, *args)`` on the store's thread (heartbeats, status changes)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._with_store, method, args)

    # ------------------------------------------------------------------ the pump

    async def pump(self) -> None:
        """Commit rows and answer asks as they come, until cancelled (run it in the task
        group)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._asks and len(self._rows) < FULL_BATCH:
                await asyncio.sleep(BATCH_WINDOW_S)  # let lone results find company
            asks, self._asks = self._asks, []
            rows, self._rows = self._rows, []
            if not asks and not rows:
                continue
            try:
                kept, ids, answers = await loop.run_in_executor(
                    self._thread,
                    self._commit,
                    [r for r, _ in rows],
                    [(cell_id, claim) for cell_id, claim, _ in asks],
                )
            except BaseException as exc:
                waiting: list[asyncio.Future[Any]] = [f for *_, f in asks] + [f for _, f in rows]
                for future in waiting:
                    if not future.done():
                        future.cancel()
                raise exc from None
            if self.on_commit is not None and rows:
                self.on_commit(kept, ids)
            for (_, row_future), response_id in zip(rows, ids, strict=True):
                if not row_future.done():
                    row_future.set_result(response_id)
            for (*_, ask_future), answer in zip(asks, answers, strict=True):
                if not ask_future.done():
                    ask_future.set_result(answer)

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
        self, rows: list[ResultRow], asks: list[tuple[str, bool]]
    ) -> tuple[list[ResultRow], list[int | None], list[Claim]]:
        """Commit ``rows`` and answer ``asks``: the rows as committed, their ids, the answers."""
        store = self._open()
        try:
            ids, answers = store.commit(rows, asks, self.owner, after=self.after)
            return rows, ids, answers
        except StoreError:
            raise
        except Exception:
            if not rows:
                raise
        # A row's data, not the store (see the module doc): each row alone, else its error row.
        kept: list[ResultRow] = []
        ids = []
        for row in rows:
            try:
                ids += store.commit([row], [], self.owner, after=self.after)[0]
            except StoreError:
                raise
            except Exception as exc:
                row = unstorable(row, exc)
                ids += store.commit([row], [], self.owner, after=self.after)[0]
            kept.append(row)
        answers = store.commit([], asks, self.owner, after=self.after)[1] if asks else []
        return kept, ids, answers

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
