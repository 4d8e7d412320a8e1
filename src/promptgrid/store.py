"""The SQLite store: every run, request, answer and attempt, committed as it arrives.

Content-addressed, like simonw/llm's logs: a request is keyed by its ``cell_id`` (the hash of
its canonical JSON, see ``grid``), so an identical request in another run or another
experiment finds its answer here (the cache). Tables:

- ``runs``       one row per run: the experiment as validated, its status and size.
- ``requests``   one row per distinct request (``cell_id``): what was sent.
- ``responses``  successful answers only — errors are never cached as answers.
- ``results``    one row per run × cell index: the result table, pointing at a response or
                 holding the error of the cell's last attempt.
- ``attempts``   every attempt of every cell, for the record.

WAL mode with ``synchronous=NORMAL``: a commit survives the process being killed at any moment
(it may not survive a power cut, which costs at most the last few calls). Schema changes are
named migrations in ``migrations``, each applied in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import StoreError

STORE_NAME = "promptgrid.sqlite"

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_initial",
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            experiment TEXT NOT NULL,
            source TEXT,
            spec_json TEXT NOT NULL,
            columns_json TEXT NOT NULL,
            options_json TEXT NOT NULL DEFAULT '{}',
            total INTEGER NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX runs_experiment ON runs (experiment, run_id);
        CREATE TABLE requests (
            cell_id TEXT PRIMARY KEY,
            request_json TEXT NOT NULL
        );
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY,
            cell_id TEXT NOT NULL,
            response TEXT,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cached_tokens INTEGER,
            reasoning_tokens INTEGER,
            resolved_model TEXT,
            request_id TEXT,
            latency_s REAL,
            cost_usd REAL,
            rate_limits_json TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX responses_cell ON responses (cell_id, id);
        CREATE TABLE results (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            idx INTEGER NOT NULL,
            cell_id TEXT NOT NULL,
            prompt TEXT NOT NULL,
            vars_json TEXT NOT NULL,
            params_json TEXT NOT NULL,
            repeat INTEGER NOT NULL,
            status TEXT NOT NULL,
            response_id INTEGER REFERENCES responses (id),
            error_type TEXT,
            http_status INTEGER,
            error TEXT,
            attempts INTEGER NOT NULL,
            latency_s REAL,
            cost_usd REAL,
            cached INTEGER NOT NULL,
            PRIMARY KEY (run_id, idx)
        );
        CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            status TEXT NOT NULL,
            error_type TEXT,
            http_status INTEGER,
            error TEXT,
            latency_s REAL,
            at TEXT NOT NULL
        );
        CREATE INDEX attempts_cell ON attempts (run_id, idx);
        """,
    ),
)


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str:
    """Compact JSON, the way every JSON column is written."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class RunInfo:
    """One row of ``runs``."""

    run_id: str
    experiment: str
    source: str | None
    spec: dict[str, Any]
    columns: list[tuple[str, str]]
    options: dict[str, Any]
    total: int
    status: str
    created_at: str
    finished_at: str | None


@dataclass(frozen=True)
class Answer:
    """A successful response, as stored."""

    response: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    resolved_model: str | None
    request_id: str | None
    latency_s: float | None
    cost_usd: float | None
    rate_limits: dict[str, str]


@dataclass(frozen=True)
class ResultRow:
    """What the scheduler hands the store for one finished cell."""

    run_id: str
    idx: int
    cell_id: str
    prompt: str
    vars: dict[str, Any]
    params: dict[str, Any]
    repeat: int
    request: dict[str, Any]
    status: str  # "ok" | "error"
    attempts: Sequence[dict[str, Any]]  # status, error_type, http_status, error, latency_s
    answer: Answer | None = None  # a new answer to store (status ok, not cached)
    response_id: int | None = None  # an existing answer (cached)
    error_type: str | None = None
    http_status: int | None = None
    error: str | None = None
    latency_s: float | None = None
    cost_usd: float | None = None
    cached: bool = False


class Store:
    """A promptgrid SQLite file. Use as a context manager or call ``close``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None

    @classmethod
    def in_dir(cls, results_dir: str | Path) -> Store:
        """The store of a results directory."""
        return cls(Path(results_dir) / STORE_NAME)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in self.db.execute("SELECT name FROM migrations")}
        known = {name for name, _ in MIGRATIONS}
        if done - known:
            raise StoreError(
                f"{self.path} was written by a newer promptgrid (migrations "
                f"{sorted(done - known)}); upgrade promptgrid or use another --results-dir"
            )
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.transaction():
                for statement in sql.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT INTO migrations VALUES (?, ?)", (name, now()))

    def transaction(self) -> _Transaction:
        """``with store.transaction():`` — one atomic, durable write."""
        return _Transaction(self.db)

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        run_id: str,
        experiment: str,
        source: str | None,
        spec: dict[str, Any],
        columns: list[tuple[str, str]],
        total: int,
        options: dict[str, Any],
    ) -> None:
        """Record a new run as ``running``."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO runs (run_id, experiment, source, spec_json, columns_json, "
                "options_json, total, status, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, experiment, source, dumps(spec), dumps(columns), dumps(options), total,
                 "running", now()),
            )  # fmt: skip

    def set_status(self, run_id: str, status: str) -> None:
        """Mark a run running, finished, interrupted or stopped."""
        finished = None if status == "running" else now()
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                (status, finished, run_id),
            )

    def runs(self, experiment: str | None = None) -> list[RunInfo]:
        """All runs, newest first (optionally of one experiment)."""
        sql = "SELECT * FROM runs"
        args: tuple[Any, ...] = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            args = (experiment,)
        rows = self.db.execute(sql + " ORDER BY run_id DESC", args).fetchall()
        return [_run_info(row) for row in rows]

    def run(self, run_id: str) -> RunInfo | None:
        """One run, or None."""
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run_info(row) if row else None

    def counts(self, run_id: str) -> dict[str, int]:
        """Result rows of a run by status (ok / error), plus cached."""
        out = dict(
            self.db.execute(
                "SELECT status, COUNT(*) FROM results WHERE run_id = ? GROUP BY status", (run_id,)
            ).fetchall()
        )
        out["cached"] = self.db.execute(
            "SELECT COUNT(*) FROM results WHERE run_id = ? AND cached = 1", (run_id,)
        ).fetchone()[0]
        return out

    def error_summary(self, run_id: str) -> list[tuple[str, int]]:
        """Error rows of a run by error type, most frequent first."""
        return self.db.execute(
            "SELECT error_type, COUNT(*) AS n FROM results WHERE run_id = ? AND status = 'error' "
            "GROUP BY error_type ORDER BY n DESC",
            (run_id,),
        ).fetchall()

    # ------------------------------------------------------------------ cells

    def indexes(self, run_id: str, status: str | None = None) -> set[int]:
        """Cell indexes of a run that have a result row (of ``status``): the cells to skip."""
        sql, args = "SELECT idx FROM results WHERE run_id = ?", (run_id,)
        if status is not None:
            sql, args = sql + " AND status = ?", (run_id, status)
        return {row[0] for row in self.db.execute(sql, args)}

    def cached_answer(self, cell_id: str) -> int | None:
        """The id of the newest stored answer to this request, if any."""
        row = self.db.execute(
            "SELECT id FROM responses WHERE cell_id = ? ORDER BY id DESC LIMIT 1", (cell_id,)
        ).fetchone()
        return row[0] if row else None

    def cached_among(self, cell_ids: Iterable[str]) -> set[str]:
        """Which of these requests already have an answer."""
        ids = list(cell_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self.db.execute(
                    f"SELECT DISTINCT cell_id FROM responses WHERE cell_id IN ({marks})", chunk
                )
            )
        return found

    def write(self, rows: Sequence[ResultRow]) -> list[int | None]:
        """Commit finished cells in one transaction (durable when this returns).

        Returns the response id each row points at (None for error rows)."""
        at = now()
        with self.transaction():
            return [self._write_one(row, at) for row in rows]

    def _write_one(self, row: ResultRow, at: str) -> int | None:
        db = self.db
        db.execute(
            "INSERT OR IGNORE INTO requests (cell_id, request_json) VALUES (?, ?)",
            (row.cell_id, dumps(row.request)),
        )
        response_id = row.response_id
        if row.answer is not None:
            a = row.answer
            response_id = db.execute(
                "INSERT INTO responses (cell_id, response, finish_reason, prompt_tokens, "
                "completion_tokens, cached_tokens, reasoning_tokens, resolved_model, request_id, "
                "latency_s, cost_usd, rate_limits_json, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (row.cell_id, a.response, a.finish_reason, a.prompt_tokens, a.completion_tokens,
                 a.cached_tokens, a.reasoning_tokens, a.resolved_model, a.request_id, a.latency_s,
                 a.cost_usd, dumps(a.rate_limits), at),
            ).lastrowid  # fmt: skip
        db.execute(
            "INSERT OR REPLACE INTO results (run_id, idx, cell_id, prompt, vars_json, params_json, "
            "repeat, status, response_id, error_type, http_status, error, attempts, latency_s, "
            "cost_usd, cached) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row.run_id, row.idx, row.cell_id, row.prompt, dumps(row.vars), dumps(row.params),
             row.repeat, row.status, response_id, row.error_type, row.http_status, row.error,
             len(row.attempts), row.latency_s, row.cost_usd, int(row.cached)),
        )  # fmt: skip
        if row.attempts:
            db.executemany(
                "INSERT INTO attempts (run_id, idx, attempt, status, error_type, http_status, "
                "error, latency_s, at) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (row.run_id, row.idx, a.get("number", i + 1), a["status"], a.get("error_type"),
                     a.get("http_status"), a.get("error"), a.get("latency_s"), at)
                    for i, a in enumerate(row.attempts)
                ],
            )  # fmt: skip
        return response_id

    def result_rows(self, run_id: str, batch: int = 5000) -> Iterator[list[sqlite3.Row]]:
        """The result table of a run in cell order, in batches (joined with requests/answers)."""
        cursor = self.db.cursor()
        cursor.row_factory = sqlite3.Row
        cursor.execute(
            "SELECT r.run_id, r.idx, r.cell_id, r.prompt, r.vars_json, r.params_json, r.repeat, "
            "q.request_json, a.response, a.finish_reason, r.status, r.error_type, r.http_status, "
            "r.error, r.attempts, a.prompt_tokens, a.completion_tokens, a.cached_tokens, "
            "a.reasoning_tokens, r.cost_usd, r.latency_s, a.resolved_model, a.request_id, r.cached "
            "FROM results r JOIN requests q ON q.cell_id = r.cell_id "
            "LEFT JOIN responses a ON a.id = r.response_id "
            "WHERE r.run_id = ? ORDER BY r.idx",
            (run_id,),
        )
        while rows := cursor.fetchmany(batch):
            yield rows

    def attempt_history(self, run_id: str) -> list[sqlite3.Row]:
        """Every attempt of every cell of a run, in order."""
        cursor = self.db.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY idx, rowid", (run_id,)
        ).fetchall()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _run_info(row: tuple[Any, ...]) -> RunInfo:
    run_id, experiment, source, spec, columns, options, total, status, created, finished = row
    return RunInfo(
        run_id, experiment, source, json.loads(spec), [tuple(c) for c in json.loads(columns)],
        json.loads(options), total, status, created, finished,
    )  # fmt: skip
