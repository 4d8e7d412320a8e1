"""Scoring a run's stored rows, chunk by chunk, and the judge cells it still needs.

A run's rows are read from the store in cell order, a chunk at a time; each answered row gets
every score it is missing, and each chunk's scores are written in one transaction — so a run of
any size scores in bounded memory, an interrupted scoring resumes where it stopped, and a chunk
is never half-written. Error rows get no score (``NA``): a call that failed is not an answer that
failed.

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

from ..grid import Cell, request_key
from ..spec.scores import ScoreDef
from ..spec.templates import RenderError
from ..store import ScoreRecord, Store
from . import custom
from .checks import ScoreFailure, evaluate
from .judge import judge_context, judge_request, parse_verdict

__all__ = ["CHUNK", "GradedRow", "JudgeRoute", "Redo", "judge_cells", "score_chunk"]

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
        for r in store.graded_rows(run_id, after, limit)
    ]


def _due(
    state: Mapping[tuple[int, str], tuple[str, bool]], score: ScoreDef, idx: int, redo: Redo
) -> bool:
    stored = state.get((idx, score.name))
    if redo == "all" or stored is None:
        return True
    digest, failed = stored
    return digest != score.digest or (redo == "errors" and failed)


def score_chunk(
    store: Store,
    run_id: str,
    scores: Sequence[ScoreDef],
    judges: Mapping[str, JudgeRoute],
    after: int,
    redo: Redo,
    limit: int = CHUNK,
) -> int | None:
    """Score the rows after cell ``after`` (at most ``limit``); the last cell read, or None
    when there are no more rows."""
    rows = read_rows(store, run_id, after, limit)
    if not rows:
        return None
    lo, hi = rows[0].idx, rows[-1].idx
    state = store.score_state(run_id, lo, hi)
    verdicts = store.judge_answers(run_id, lo, hi) if judges else {}
    records: list[ScoreRecord] = []
    replace: list[tuple[int, str]] = []
    for row in rows:
        if not row.ok:
            continue
        for score in scores:
            if not _due(state, score, row.idx, redo):
                continue
            made = _score(score, row, judges, verdicts)
            if made is not None:
                replace.append((row.idx, score.name))
                records += made
    if replace:
        store.write_scores(run_id, records, {s.name: s.digest for s in scores}, replace)
    return hi


def _score(
    score: ScoreDef,
    row: GradedRow,
    judges: Mapping[str, JudgeRoute],
    verdicts: Mapping[tuple[int, str, str], tuple[str, str | None, str | None, str | None]],
) -> list[ScoreRecord] | None:
    """One score of one row (None: its judge has not been called yet)."""
    name, kind, idx = score.name, score.column_kind, row.idx
    if score.judge is not None:
        return _verdict(score, row, judges[name], verdicts)
    try:
        if score.kind == "python":
            outputs = custom.call(score, row.response, row.for_python())
            return [ScoreRecord(idx, name, n, k, v) for n, k, v in outputs]
        return [
            ScoreRecord(idx, name, name, kind, float(evaluate(score, row.response, row.values)))
        ]
    except ScoreFailure as exc:
        return [ScoreRecord(idx, name, name, kind, None, error=str(exc))]


def _verdict(
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
        why = f"judge call failed: [{error_type}] {error}"
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
        state = store.score_state(run_id, rows[0].idx, rows[-1].idx)
        for row in rows:
            for score in wanted if row.ok else ():
                if not _due(state, score, row.idx, redo):
                    continue
                assert score.judge is not None
                route = judges[score.name]
                try:
                    request = judge_request(score.judge, route.endpoint_id, _context(row))
                except RenderError:
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
