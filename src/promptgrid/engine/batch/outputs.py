"""A finished batch's output and error files, read back as result rows.

Output order is not the input's: lines are joined to cells by ``custom_id`` (the cell id).
:class:`Outputs` indexes the downloaded files (custom_id -> where its line is) without keeping
the lines in memory, and reads a line again when its cell's row is built, in grid order — so
memory holds an index of ids, whatever the size of the answers. Rows are built like the online
path's: :func:`promptgrid.engine.answers.stored_answer` for an answer, the error class of the
failure otherwise (an HTTP status, a request that never ran), cost at batch prices, charged
as the online path charges (:func:`promptgrid.engine.budget.charged_cost`).
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import BatchCancelled, BatchExpired, BatchFailed, BatchMissing, ProviderError
from ...grid import Cell
from ...pricing import Pricing
from ...providers.base import Completion
from ...providers.batch import custom_id_of, read_line
from ...store import ResultRow
from ...store.batch import First
from ..answers import stored_answer, unstorable
from ..budget import charged_cost

if TYPE_CHECKING:
    from ...providers.translate import Secrets

__all__ = ["Outputs", "answer_row", "copy_row", "unanswered"]

#: Why a cell of an ended batch has no line, by the batch's status.
_UNANSWERED: dict[str, tuple[type[ProviderError], str]] = {
    "expired": (BatchExpired, "the batch expired before this request ran"),
    "cancelled": (BatchCancelled, "the batch was cancelled before this request ran"),
    "failed": (BatchFailed, "the batch failed validation: none of its requests ran"),
}


class Outputs:
    """The lines of a batch's downloaded output and error files, by custom_id. Use as a
    context manager (the files are memory-mapped while it is open)."""

    def __init__(self, paths: Sequence[Path], api: str, key: Secrets) -> None:
        self.api = api
        self.key = key
        self.unreadable = 0  #: lines without a custom_id (nothing to join them to)
        self._stack = ExitStack()
        self._maps: list[mmap.mmap] = []
        self._index: dict[str, tuple[int, int, int]] = {}  # custom_id -> (map, start, end)
        for path in paths:
            if path.stat().st_size:
                self._add(path)

    def _add(self, path: Path) -> None:
        file = self._stack.enter_context(path.open("rb"))
        data = self._stack.enter_context(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
        number = len(self._maps)
        self._maps.append(data)
        start, size = 0, len(data)
        while start < size:
            end = data.find(b"\n", start)
            end = size if end < 0 else end
            if end > start:
                custom_id = custom_id_of(data[start:end])
                if custom_id is None:
                    self.unreadable += 1
                else:  # the first line wins: the output file is read before the error file
                    self._index.setdefault(custom_id, (number, start, end))
            start = end + 1

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self._maps.clear()
        self._stack.close()

    def __len__(self) -> int:
        return len(self._index)

    def get(self, cell_id: str) -> Completion | ProviderError | None:
        """The answer (or error) of request ``cell_id``; None if no line names it."""
        where = self._index.get(cell_id)
        if where is None:
            return None
        number, start, end = where
        try:
            custom_id, outcome = read_line(self._maps[number][start:end], self.api, self.key)
        except ValueError:
            self.unreadable += 1
            return None
        return outcome if custom_id == cell_id else None


def unanswered(status: str | None, errors: Sequence[dict[str, Any]] | None) -> ProviderError:
    """The error of a cell whose ended batch has no line for it."""
    kind, message = _UNANSWERED.get(
        status or "", (BatchMissing, "the batch completed without a line for this request")
    )
    if kind is BatchFailed and errors:
        details = "; ".join(
            f"line {e['line']}: {e.get('message')}" if e.get("line") else str(e.get("message"))
            for e in errors[:3]
        )
        message = f"{message} ({details})"
    return kind(message)


def _row(cell: Cell, run_id: str, batch_id: str | None, status: str, **fields: Any) -> ResultRow:
    return ResultRow(
        run_id=run_id,
        idx=cell.index,
        cell_id=cell.cell_id,
        prompt=cell.prompt,
        vars=cell.vars,  # type: ignore[arg-type]  # the grid's own, shared: never changed
        params=cell.params,  # type: ignore[arg-type]
        repeat=cell.repeat,
        request=cell.request.record(),
        status=status,
        batch_id=batch_id,
        **fields,
    )


def answer_row(
    cell: Cell,
    outcome: Completion | ProviderError,
    *,
    run_id: str,
    batch_id: str | None,
    pricing: Pricing,
) -> ResultRow:
    """The row of the cell whose request a batch answered (or failed): one attempt, no
    latency (a batch does not time its requests), cost at batch prices. An answer's usage is
    :func:`~promptgrid.engine.budget.vet`-ted first (by the caller, who counts what it
    drops)."""
    if isinstance(outcome, ProviderError):
        attempt = {"number": 1, "status": "error", "error_type": outcome.code,
                   "http_status": outcome.http_status, "error": outcome.message}  # fmt: skip
        return _row(
            cell, run_id, batch_id, "error", attempts=[attempt], error_type=outcome.code,
            http_status=outcome.http_status, error=outcome.message, latency_s=None,
            cost_usd=None,
        )  # fmt: skip
    request = cell.request
    attempts = [{"number": 1, "status": "ok"}]
    try:
        cost = charged_cost(pricing, request, outcome, batch=True)
        answer = stored_answer(request, outcome, None, cost)
    except Exception as exc:  # a value no check foresaw: this row's error, not the batch's
        unsent = _row(cell, run_id, batch_id, "ok", attempts=attempts, latency_s=None)
        return unstorable(unsent, exc)
    return _row(
        cell, run_id, batch_id, "ok", attempts=attempts, answer=answer, latency_s=None,
        cost_usd=cost, cached=False,
    )  # fmt: skip


def copy_row(cell: Cell, first: First, *, run_id: str, batch_id: str | None) -> ResultRow:
    """The row of a cell whose request is shared with a cell answered first (``first``: its
    status, response id, error type, HTTP status, error): the same answer, ``cached``, cost
    0 — as the online path gives an identical cell of the same run."""
    status, response_id, error_type, http_status, error = first
    if status == "ok":
        return _row(
            cell, run_id, batch_id, "ok", attempts=(), response_id=response_id, cached=True,
            latency_s=0.0, cost_usd=0.0,
        )  # fmt: skip
    return _row(
        cell, run_id, batch_id, "error", attempts=(), error_type=error_type,
        http_status=http_status, error=error, latency_s=None, cost_usd=None,
    )  # fmt: skip
