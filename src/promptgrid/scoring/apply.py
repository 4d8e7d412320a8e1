"""Scoring a run's stored rows, chunk by chunk, and the judge cells it still needs.

A run's rows are read from the store in cell order, a chunk at a time (:func:`read_chunk`); each
answered row gets every score it is missing — a judge's read here from its stored verdict, the
others computed in the scoring worker (:mod:`.worker`) — and each chunk's scores are written in
one transaction (:func:`write_chunk`): a run of any size scores in bounded memory, and an
interrupted scoring (a stop writes what the worker had answered) resumes where it stopped.
Error rows get no score (``NA``): a call that failed is not an answer that failed.

Which stored scores are redone (``Redo``): ``missing`` — none yet, or made by another definition
(the digest differs: an edited ``scores:`` on resume); ``errors`` — those too, and the ones that
failed (``retry``); ``all`` — every one (``promptgrid score``: a scorer's code may have changed).

A judge's score is read from its call (``judge_calls``), matched by the judge request's hash, so
a verdict is always the one its current rubric asked for; a row whose judge has not been called
yet (an interrupted run) stays missing, to be scored later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .. import untrusted
from ..grid import Cell, request_key
from ..spec.scores import ScoreDef
from ..spec.templates import RenderError
from ..spec.yamlmarks import shorten
from ..store import ScoreRecord, Store
from ..store import scores as scorestore
from .checks import ScoreFailure
from .judge import judge_context, judge_request, parse_verdict
from .worker import Job, Result, RowData

__all__ = [
    "CHUNK", "Chunk", "GradedRow", "JudgeRoute", "Redo", "judge_cells", "read_chunk",
    "write_chunk",
]  # fmt: skip

Redo = Literal["missing", "errors", "all"]
#: Rows scored per transaction.
CHUNK = 1000


@dataclass(frozen=True)
class JudgeRoute:
    """Where a judge's calls go: the endpoint's name and id (part of the request hash)."""

    endpoint: str
    endpoint_id: str


@dataclass(frozen=True)
class GradedRow:
    """One stored row, as scoring needs it."""

    idx: int
    cell_id: str
    prompt: str
    vars: dict[str, Any]
    params: dict[str, Any]
    repeat: int
    ok: bool
    messages: list[dict[str, Any]]
    response: str | None

    @property
    def values(self) -> dict[str, Any]:
        """What an expected value sees: params, then vars and case columns."""
        return {**self.params, **self.vars}

    def for_python(self) -> dict[str, Any]:
        """The ``row`` a ``python:`` scorer is called with."""
        return {
            "prompt": self.prompt,
            "vars": dict(self.vars),
            "params": dict(self.params),
            "repeat": self.repeat,
            "messages": self.messages,
            "cell_id": self.cell_id,
        }


def read_rows(store: Store, run_id: str, after: int, limit: int) -> list[GradedRow]:
    """Up to ``limit`` rows of the run after cell ``after``."""
    return [
        GradedRow(
            r["idx"],
            r["cell_id"],
            r["prompt"],
            json.loads(r["vars_json"]),
            json.loads(r["params_json"]),
            r["repeat"],
            r["status"] == "ok",
            json.loads(r["messages"] or "[]"),
            r["response"],
        )
        for r in scorestore.graded_rows(store, run_id, after, limit)
    ]


def _due(
    state: Mapping[tuple[int, str], tuple[str, bool]], score: ScoreDef, idx: int, redo: Redo
) -> bool:
    stored = state.get((idx, score.name))
    if redo == "all" or stored is None:
        return True
    digest, failed = stored
    return digest != score.digest or (redo == "errors" and failed)


@dataclass(frozen=True)
class Chunk:
    """The scoring work of up to ``CHUNK`` rows: judges' verdicts read already (``records``),
    the other scores still to compute in the worker (``rows``, ``jobs``)."""

    last: int  #: the last cell read
    records: list[ScoreRecord]
    rows: list[RowData]
    jobs: list[Job]
    idx: list[int]  #: the cell of each row in ``rows``
    done: list[tuple[int, str]]  #: (cell, score) of ``records``


def read_chunk(
    store: Store,
    run_id: str,
    scores: Sequence[ScoreDef],
    judges: Mapping[str, JudgeRoute],
    after: int,
    redo: Redo,
    limit: int = CHUNK,
) -> Chunk | None:
    """The scoring work of the rows after cell ``after`` (at most ``limit``); None when there
    are no more rows."""
    rows = read_rows(store, run_id, after, limit)
    if not rows:
        return None
    lo, hi = rows[0].idx, rows[-1].idx
    state = scorestore.score_state(store, run_id, lo, hi)
    verdicts = scorestore.judge_answers(store, run_id, lo, hi) if judges else {}
    chunk = Chunk(hi, [], [], [], [], [])
    for row in rows:
        due = [s for s in scores if row.ok and _due(state, s, row.idx, redo)]
        computed = [s.name for s in due if s.judge is None]
        if computed:
            python = any(s.kind == "python" for s in due)
            chunk.jobs.extend((len(chunk.rows), name) for name in computed)
            chunk.rows.append((row.response, row.values, row.for_python() if python else None))
            chunk.idx.append(row.idx)
        for score in (s for s in due if s.judge is not None):
            made = _verdict(score, row, judges[score.name], verdicts)
            if made is not None:
                chunk.done.append((row.idx, score.name))
                chunk.records.extend(made)
    return chunk


def write_chunk(
    store: Store, run_id: str, scores: Sequence[ScoreDef], chunk: Chunk, results: list[Result]
) -> None:
    """Store the chunk's verdicts and the worker's ``results`` (one per job, in order; fewer
    when scoring was stopped: the rest stay missing), in one transaction."""
    kinds = {s.name: s.column_kind for s in scores}
    records, done = list(chunk.records), list(chunk.done)
    for (row, name), (outputs, error) in zip(chunk.jobs, results, strict=False):
        idx = chunk.idx[row]
        done.append((idx, name))
        if error is not None:
            records.append(ScoreRecord(idx, name, name, kinds[name], None, untrusted.text(error)))
        else:
            records += [ScoreRecord(idx, name, n, k, v) for n, k, v in outputs or ()]
    if done:
        scorestore.write_scores(store, run_id, records, {s.name: s.digest for s in scores}, done)


def _verdict(
    score: ScoreDef,
    row: GradedRow,
    route: JudgeRoute,
    verdicts: Mapping[tuple[int, str, str], tuple[str, str | None, str | None, str | None]],
) -> list[ScoreRecord] | None:
    """A judge's score of one row (None: the judge has not been called yet): whatever goes
    wrong with this one verdict is this row's score error, never the phase's."""
    try:
        return _read_verdict(score, row, route, verdicts)
    except Exception as exc:  # an answer or a verdict no rule here foresaw
        why = untrusted.text(
            f"verdict could not be read: {type(exc).__name__}: {shorten(str(exc))}"
        )
        return [ScoreRecord(row.idx, score.name, score.name, score.column_kind, None, why)]


def _read_verdict(
    score: ScoreDef,
    row: GradedRow,
    route: JudgeRoute,
    verdicts: Mapping[tuple[int, str, str], tuple[str, str | None, str | None, str | None]],
) -> list[ScoreRecord] | None:
    assert score.judge is not None
    name, kind, idx = score.name, score.column_kind, row.idx
    try:
        request = judge_request(score.judge, route.endpoint_id, _context(row))
    except RenderError as exc:
        return [ScoreRecord(idx, name, name, kind, None, f"rubric failed to render: {exc}")]
    cell_id = request_key(request, 0)
    found = verdicts.get((idx, name, cell_id))
    if found is None:
        return None
    status, text, error_type, error = found
    if status != "ok":
        why = untrusted.text(f"judge call failed: [{error_type}] {error}")
        return [ScoreRecord(idx, name, name, kind, None, why, judge_cell_id=cell_id)]
    try:
        value, reason = parse_verdict(text, score.judge.scale)
    except ScoreFailure as exc:
        return [ScoreRecord(idx, name, name, kind, None, str(exc), judge_cell_id=cell_id)]
    return [ScoreRecord(idx, name, name, kind, value, None, reason, judge_cell_id=cell_id)]


def _context(row: GradedRow) -> dict[str, Any]:
    return judge_context(row.values, row.response, row.messages)


def judge_cells(
    store: Store,
    run_id: str,
    scores: Sequence[ScoreDef],
    judges: Mapping[str, JudgeRoute],
    redo: Redo,
    size: int = 500,
) -> Iterator[Cell]:
    """The judge calls the run's answered rows still need, in cell order, read lazily.

    Each is a cell of its own (``Cell.score`` names the score, ``index`` the graded cell) with
    its request hashed like any other; a rubric that fails to render for a row makes no cell
    (scoring records the error)."""
    wanted = [s for s in scores if s.judge is not None]
    after = -1
    while wanted:
        rows = read_rows(store, run_id, after, size)
        if not rows:
            return
        state = scorestore.score_state(store, run_id, rows[0].idx, rows[-1].idx)
        for row in rows:
            for score in wanted if row.ok else ():
                if not _due(state, score, row.idx, redo):
                    continue
                assert score.judge is not None
                route = judges[score.name]
                try:
                    request = judge_request(score.judge, route.endpoint_id, _context(row))
                except Exception:  # RenderError, or worse: scoring records it for the row
                    continue
                params = {"model": score.judge.model, **request.params}
                yield Cell(
                    row.idx,
                    row.prompt,
                    {},
                    params,
                    0,
                    route.endpoint,
                    request,
                    request_key(request, 0),
                    score=score.name,
                )
        after = rows[-1].idx
