"""The store's record of a run's batches: every remote step written before and after it happens.

A run in batch mode cuts its pending requests into *chunks*, one request file and one provider
batch each. ``batch_chunks`` holds a chunk's life, ``batch_cells`` which cells of the grid it
answers (a request that several cells share is one line of the file, and answers them all).
A chunk moves through these states, each written (and committed) at the moment it names::

    planned    its cells are chosen and recorded; nothing remote yet
    uploading  its file is about to be uploaded (it may be, or not, if we die now)
    uploaded   file_id recorded: the upload happened
    creating   its batch is about to be created (it may be, or not, if we die now)
    submitted  batch_id recorded: the provider has it; batch_status follows the provider's
    cancelled  cancelled before it became a batch: nothing of it ran (its cells are error rows
               once it is collected)
    collected  the batch ended and its cells have their rows

Write-ahead makes a crash at any moment recoverable without a duplicate: a chunk found
``uploading`` looks for its file by name before uploading again, one found ``creating`` looks
for its batch by metadata before creating one (``promptgrid.engine.batch.driver``). Functions here
take the :class:`~promptgrid.store.Store` first, so the engine can run them on its store
thread (``StoreIO.call``); each is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .core import Store
from .failures import guarded
from .records import dumps, now

__all__ = [
    "LIVE", "TERMINAL", "Chunk", "First", "add_cells", "answered_by", "batch_counts", "bulk_writes",
    "chunk_cells", "chunks", "firsts", "live_cells", "new_chunk", "reserved_cost",
    "update_chunk",
]  # fmt: skip

#: Provider statuses after which a batch changes no more.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: Local states of a chunk not yet collected (its cells are spoken for).
LIVE = ("planned", "uploading", "uploaded", "creating", "submitted", "cancelled")
#: Local states of a chunk that may still be charged for.
_CHARGEABLE = ("planned", "uploading", "uploaded", "creating", "submitted")


@dataclass(frozen=True)
class Chunk:
    """One row of ``batch_chunks``."""

    run_id: str
    chunk: int
    endpoint: str  #: the endpoint's name
    url: str  #: the API path of its lines and its batch
    filename: str  #: its request file's unique name at the provider
    state: str  #: see the module docstring
    requests: int  #: lines of its file
    cells: int  #: cells of the grid it answers (shared requests counted per cell)
    bytes: int
    worst_cost: float | None  #: USD it may cost at most (at batch prices), for the budget
    file_id: str | None
    batch_id: str | None
    batch_status: str | None  #: the provider's status, as last seen
    completed: int | None  #: the provider's request counts, as last seen
    failed: int | None
    total: int | None
    output_file_id: str | None
    error_file_id: str | None
    errors: list[dict[str, Any]] | None  #: a failed batch's validation errors
    planned_at: str
    step_at: float  #: ``time.time()`` of its last write-ahead step (bounds a lookup)
    updated_at: str

    @property
    def live(self) -> bool:
        """Not yet collected: its cells belong to it."""
        return self.state in LIVE

    @property
    def ended(self) -> bool:
        """Collectable: its batch reached a terminal status, or it never became one
        (cancelled)."""
        return self.state == "cancelled" or (
            self.state == "submitted" and self.batch_status in TERMINAL
        )


_COLUMNS = (
    "run_id, chunk, endpoint, url, filename, state, requests, cells, bytes, worst_cost, file_id, "
    "batch_id, batch_status, completed, failed, total, output_file_id, error_file_id, "
    "errors_json, planned_at, step_at, updated_at"
)
#: Columns :func:`update_chunk` may set.
_SETTABLE = frozenset({
    "state", "file_id", "batch_id", "batch_status", "completed", "failed", "total",
    "output_file_id", "error_file_id", "errors",
})  # fmt: skip


def _chunk(row: Sequence[Any]) -> Chunk:
    values = list(row)
    values[18] = json.loads(values[18]) if values[18] else None
    return Chunk(*values)


@guarded("reading the run's batches")
def chunks(store: Store, run_id: str) -> list[Chunk]:
    """A run's chunks, in order."""
    rows = store.db.execute(
        f"SELECT {_COLUMNS} FROM batch_chunks WHERE run_id = ? ORDER BY chunk", (run_id,)
    )
    return [_chunk(row) for row in rows]


@guarded("recording a batch chunk")
def new_chunk(
    store: Store,
    run_id: str,
    *,
    endpoint: str,
    url: str,
    cells: Sequence[tuple[int, str]],
    requests: int,
    size: int,
    worst_cost: float | None,
) -> Chunk:
    """Record a planned chunk and its cells ``(idx, cell_id)`` (one transaction); its number
    is the run's next. Its file's name is ``promptgrid-<run>-<chunk>.jsonl``."""
    at, stamp = time.time(), now()
    with store.transaction():
        row = store.db.execute(
            "SELECT COALESCE(MAX(chunk), -1) + 1 FROM batch_chunks WHERE run_id = ?", (run_id,)
        ).fetchone()
        number = int(row[0])
        filename = f"promptgrid-{run_id}-{number}.jsonl"
        store.db.execute(
            "INSERT INTO batch_chunks (run_id, chunk, endpoint, url, filename, state, requests, "
            "cells, bytes, worst_cost, planned_at, step_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, number, endpoint, url, filename, "planned", requests, len(cells), size,
             worst_cost, stamp, at, stamp),
        )  # fmt: skip
        store.db.executemany(
            "INSERT OR REPLACE INTO batch_cells (run_id, idx, chunk, cell_id) VALUES (?,?,?,?)",
            [(run_id, idx, number, cell_id) for idx, cell_id in cells],
        )
        found = store.db.execute(
            f"SELECT {_COLUMNS} FROM batch_chunks WHERE run_id = ? AND chunk = ?",
            (run_id, number),
        ).fetchone()
    return _chunk(found)


@guarded("recording a batch step")
def update_chunk(store: Store, run_id: str, chunk: int, **fields: Any) -> Chunk:
    """Set a chunk's fields (``state``, ``file_id``, ``batch_id``, the provider's status and
    counts, ``errors``) in one transaction; a new ``state`` renews ``step_at``. Returns the
    chunk as stored."""
    unknown = set(fields) - _SETTABLE
    if unknown:
        raise ValueError(f"not a chunk field: {sorted(unknown)}")
    columns = {("errors_json" if k == "errors" else k): v for k, v in fields.items()}
    if "errors_json" in columns and columns["errors_json"] is not None:
        columns["errors_json"] = dumps(columns["errors_json"])
    columns["updated_at"] = now()
    if "state" in fields:
        columns["step_at"] = time.time()
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with store.transaction():
        store.db.execute(
            f"UPDATE batch_chunks SET {assignments} WHERE run_id = ? AND chunk = ?",
            [*columns.values(), run_id, chunk],
        )
        row = store.db.execute(
            f"SELECT {_COLUMNS} FROM batch_chunks WHERE run_id = ? AND chunk = ?",
            (run_id, chunk),
        ).fetchone()
    return _chunk(row)


@guarded("reading a chunk's cells")
def chunk_cells(store: Store, run_id: str, chunk: int) -> dict[int, str]:
    """The cells a chunk answers: idx -> cell_id."""
    rows = store.db.execute(
        "SELECT idx, cell_id FROM batch_cells WHERE run_id = ? AND chunk = ?", (run_id, chunk)
    )
    return dict(rows.fetchall())


@guarded("recording a batch chunk's cells")
def add_cells(store: Store, run_id: str, chunk: int, cells: Sequence[tuple[int, str]]) -> None:
    """More cells ``(idx, cell_id)`` answered by a chunk's lines (cells sharing a request)."""
    with store.transaction():
        store.db.executemany(
            "INSERT OR REPLACE INTO batch_cells (run_id, idx, chunk, cell_id) VALUES (?,?,?,?)",
            [(run_id, idx, chunk, cell_id) for idx, cell_id in cells],
        )


@guarded("reading the batches in flight")
def live_cells(store: Store, run_id: str) -> dict[int, tuple[str, int]]:
    """The cells of a run's chunks not yet collected: idx -> (cell_id, chunk)."""
    marks = ",".join("?" * len(LIVE))
    rows = store.db.execute(
        "SELECT c.idx, c.cell_id, c.chunk FROM batch_cells c JOIN batch_chunks k "
        "ON k.run_id = c.run_id AND k.chunk = c.chunk "
        f"WHERE c.run_id = ? AND k.state IN ({marks})",
        (run_id, *LIVE),
    )
    return {idx: (cell_id, chunk) for idx, cell_id, chunk in rows}


#: While a batch's rows are committed in bulk: a page cache that holds the indexes the rows
#: land in at random (request ids), and checkpoints every 64 MB of WAL rather than every 4 MB
#: (each one waits for the disk). SQLite's defaults come back after.
_BULK = ("PRAGMA cache_size=-65536", "PRAGMA wal_autocheckpoint=16384")
_USUAL = ("PRAGMA cache_size=-2000", "PRAGMA wal_autocheckpoint=1000")


@guarded("preparing the store for a batch's rows")
def bulk_writes(store: Store, on: bool) -> None:
    """Tune this connection for committing many rows (``on``), or back to the defaults (then
    the WAL is checkpointed, without waiting for readers)."""
    for pragma in _BULK if on else _USUAL:
        store.db.execute(pragma)
    if not on:
        store.db.execute("PRAGMA wal_checkpoint(PASSIVE)")


@guarded("reading a batch's results")
def answered_by(store: Store, run_id: str, batch_id: str) -> set[int]:
    """The cells of a run whose result row came from batch ``batch_id`` (already collected)."""
    rows = store.db.execute(
        "SELECT idx FROM results WHERE run_id = ? AND batch_id = ?", (run_id, batch_id)
    )
    return {idx for (idx,) in rows}


#: What a cell sharing a request gets from the cell answered first: status, response id,
#: error type, HTTP status, error.
First = tuple[str, "int | None", "str | None", "int | None", "str | None"]


@guarded("reading a batch's results")
def firsts(store: Store, run_id: str, batch_id: str) -> dict[str, First]:
    """The rows a batch answered itself (not shared copies), by cell id."""
    rows = store.db.execute(
        "SELECT cell_id, status, response_id, error_type, http_status, error FROM results "
        "WHERE run_id = ? AND batch_id = ? AND cached = 0",
        (run_id, batch_id),
    )
    return {cell_id: (status, rid, et, hs, e) for cell_id, status, rid, et, hs, e in rows}


@guarded("adding up the batches' worst case")
def reserved_cost(store: Store, run_id: str) -> float:
    """USD the run's chunks not yet collected may still cost at most."""
    marks = ",".join("?" * len(_CHARGEABLE))
    row = store.db.execute(
        "SELECT COALESCE(SUM(worst_cost), 0) FROM batch_chunks "
        f"WHERE run_id = ? AND state IN ({marks})",
        (run_id, *_CHARGEABLE),
    ).fetchone()
    return float(row[0])


@guarded("reading the runs with batches")
def batch_counts(store: Store, run_ids: Iterable[str]) -> Mapping[str, tuple[int, int]]:
    """For each of these runs that has chunks: (chunks, chunks not yet collected)."""
    ids = list(run_ids)
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    live = ",".join("?" * len(LIVE))
    rows = store.db.execute(
        f"SELECT run_id, COUNT(*), SUM(state IN ({live})) FROM batch_chunks "
        f"WHERE run_id IN ({marks}) GROUP BY run_id",
        (*LIVE, *ids),
    )
    return {run_id: (int(n), int(open_ or 0)) for run_id, n, open_ in rows}
