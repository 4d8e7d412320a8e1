"""A run's scores and its judges' calls, as functions over a :class:`~.core.Store` (as
:mod:`.batch` is for batch mode): the ``scores`` table (one row per run x cell x score
column, with the digest of the definition that made it) and the ``judge_calls`` table (a
judge's call for one score of one cell). The scoring phase runs them on the store's thread
(``StoreIO.call``); each write is one transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .core import Store
from .failures import guarded
from .records import ScoreRecord, dumps

__all__ = [
    "graded_rows", "judge_answers", "judge_totals", "score_outputs", "score_rows",
    "score_state", "score_summary", "set_scores", "write_scores",
]  # fmt: skip


@guarded("reading answers to score")
def graded_rows(store: Store, run_id: str, after: int, limit: int) -> list[sqlite3.Row]:
    """Up to ``limit`` result rows of a run with ``idx > after``, in order: what scoring
    needs (idx, cell_id, prompt, vars_json, params_json, repeat, status, messages,
    response)."""
    cursor = store.db.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(
        "SELECT r.idx, r.cell_id, r.prompt, r.vars_json, r.params_json, r.repeat, r.status, "
        "json_extract(q.request_json, '$.messages') AS messages, a.response "
        "FROM results r JOIN requests q ON q.cell_id = r.cell_id "
        "LEFT JOIN responses a ON a.id = r.response_id "
        "WHERE r.run_id = ? AND r.idx > ? ORDER BY r.idx LIMIT ?",
        (run_id, after, limit),
    ).fetchall()


@guarded("reading scores")
def score_state(
    store: Store, run_id: str, lo: int, hi: int
) -> dict[tuple[int, str], tuple[str, bool]]:
    """(idx, scorer) -> (digest, any error) of the stored scores of cells ``lo..hi``."""
    rows = store.db.execute(
        "SELECT idx, scorer, MIN(digest), MAX(error IS NOT NULL) FROM scores "
        "WHERE run_id = ? AND idx BETWEEN ? AND ? GROUP BY idx, scorer",
        (run_id, lo, hi),
    )
    return {(idx, scorer): (digest, bool(err)) for idx, scorer, digest, err in rows}


@guarded("reading judge verdicts")
def judge_answers(
    store: Store, run_id: str, lo: int, hi: int
) -> dict[tuple[int, str, str], tuple[str, str | None, str | None, str | None]]:
    """(idx, score, judge cell_id) -> (status, answer text, error_type, error) of the judge
    calls of cells ``lo..hi``."""
    rows = store.db.execute(
        "SELECT j.idx, j.name, j.cell_id, j.status, a.response, j.error_type, j.error "
        "FROM judge_calls j LEFT JOIN responses a ON a.id = j.response_id "
        "WHERE j.run_id = ? AND j.idx BETWEEN ? AND ?",
        (run_id, lo, hi),
    )
    return {(i, n, c): (status, text, et, e) for i, n, c, status, text, et, e in rows}


@guarded("writing scores")
def write_scores(
    store: Store,
    run_id: str,
    records: Sequence[ScoreRecord],
    digests: dict[str, str],
    replace: Iterable[tuple[int, str]],
) -> None:
    """In one transaction: drop the stored scores ``replace`` lists ((idx, scorer)), then
    store ``records`` (``digests``: scorer -> the digest of its definition)."""
    with store.transaction():
        store.db.executemany(
            "DELETE FROM scores WHERE run_id = ? AND idx = ? AND scorer = ?",
            [(run_id, idx, scorer) for idx, scorer in replace],
        )
        store.db.executemany(
            "INSERT OR REPLACE INTO scores (run_id, idx, scorer, name, kind, value, error, "
            "reason, digest, judge_cell_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(run_id, r.idx, r.scorer, r.name, r.kind, r.value, r.error, r.reason,
              digests[r.scorer], r.judge_cell_id) for r in records],
        )  # fmt: skip


@guarded("recording the run's scores")
def set_scores(store: Store, run_id: str, scores: dict[str, Any]) -> None:
    """Make ``scores`` (the file's ``scores:`` mapping) the run's scores in force, and drop
    the stored scores of any other."""
    with store.transaction():
        row = store.db.execute("SELECT spec_json FROM runs WHERE run_id = ?", (run_id,))
        spec = json.loads(row.fetchone()[0])
        if scores:
            spec["scores"] = scores
        else:
            spec.pop("scores", None)
        store.db.execute("UPDATE runs SET spec_json = ? WHERE run_id = ?", (dumps(spec), run_id))
        marks = ",".join("?" * len(scores))
        store.db.execute(
            f"DELETE FROM scores WHERE run_id = ? AND scorer NOT IN ({marks})",
            [run_id, *scores],
        )


@guarded("reading scores")
def score_outputs(store: Store, run_id: str, scorer: str) -> list[tuple[str, str]]:
    """The (name, kind) of the columns a ``python:`` scorer filled with at least one value,
    in order of first appearance (a mapping gives several)."""
    rows = store.db.execute(
        "SELECT name, MAX(kind = 'float') FROM scores WHERE run_id = ? AND scorer = ? "
        "AND value IS NOT NULL GROUP BY name ORDER BY MIN(idx), name",
        (run_id, scorer),
    )
    return [(name, "float" if is_float else "bool") for name, is_float in rows]


@guarded("reading scores")
def score_rows(store: Store, run_id: str, lo: int, hi: int) -> list[tuple[Any, ...]]:
    """(idx, scorer, name, kind, value, error, reason, judge tokens, judge cost) of cells
    ``lo..hi``; the judge's usage is that of the call that made the verdict."""
    return store.db.execute(
        "SELECT s.idx, s.scorer, s.name, s.kind, s.value, s.error, s.reason, "
        "a.prompt_tokens + a.completion_tokens, j.cost_usd FROM scores s "
        "LEFT JOIN judge_calls j ON j.run_id = s.run_id AND j.idx = s.idx "
        "AND j.name = s.scorer AND j.cell_id = s.judge_cell_id "
        "LEFT JOIN responses a ON a.id = j.response_id "
        "WHERE s.run_id = ? AND s.idx BETWEEN ? AND ?",
        (run_id, lo, hi),
    ).fetchall()


@guarded("reading judge calls")
def judge_totals(store: Store, run_id: str) -> tuple[int, int, int, int, float]:
    """The run's judge calls: (calls, cached, errors, tokens, USD paid)."""
    row = store.db.execute(
        "SELECT COUNT(*), COALESCE(SUM(j.cached), 0), COALESCE(SUM(j.status != 'ok'), 0), "
        "COALESCE(SUM(a.prompt_tokens + a.completion_tokens), 0), "
        "COALESCE(SUM(CASE WHEN j.cached = 0 THEN j.cost_usd END), 0) "
        "FROM judge_calls j LEFT JOIN responses a ON a.id = j.response_id "
        "WHERE j.run_id = ?",
        (run_id,),
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4])


@guarded("reading scores")
def score_summary(store: Store, run_id: str) -> list[tuple[str, int, float | None, int]]:
    """Per score column: (name, values, their mean, errors), in name order."""
    return store.db.execute(
        "SELECT name, COUNT(value), AVG(value), COUNT(error) FROM scores "
        "WHERE run_id = ? GROUP BY name ORDER BY MIN(rowid)",
        (run_id,),
    ).fetchall()
