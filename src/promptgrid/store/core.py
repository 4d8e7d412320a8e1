"""The :class:`Store`: one SQLite connection to a promptgrid file, its migrations, and every
read and write of runs, results, claims, leases and scores (see the package's doc)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import itertools
import json
import re
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import PromptgridWarning, StoreCorrupt, StoreError, UsageError
from . import failures
from .failures import guarded, translate
from .owners import Owner, alive, beat
from .records import ResultRow, RunInfo, dumps, now
from .schema import MIGRATIONS, ONE_CHOICE_SQL, RESULTS_SQL, SEVERAL_SQL, statements

STORE_NAME = "promptgrid.sqlite"


class Store:
    """A promptgrid SQLite file. Use as a context manager or call ``close``.

    ``readonly``: only read (works on a read-only file or folder; nothing is ever written).
    ``create``: create the file if it does not exist (else a missing store is a UsageError).
    One connection, usable from one thread at a time; the engine gives its writes a thread of
    their own (``promptgrid.engine.storeio``).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False, create: bool = True) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if (readonly or not create) and not self.path.is_file():
            raise UsageError(
                f"no runs in {self.path.parent} (no {self.path.name} there): run an experiment "
                "first, or point --results-dir at the folder that holds it"
            )
        # Opening a new store races other processes opening it too: SQLite answers "locked" at
        # once (not after the busy timeout) where waiting could deadlock, e.g. while another
        # process switches the file to WAL. Such an open starts over, for a bounded time.
        deadline = time.monotonic() + failures.BUSY_TIMEOUT_MS / 1000
        for attempt in itertools.count():
            try:
                self.db = self._open()
                return
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "BUSY" in getattr(exc, "sqlite_errorname", "")
                if not locked or time.monotonic() > deadline:
                    raise translate(exc, self.path, "opening the store") from None
                time.sleep(min(0.01 * 2**attempt, 0.2))
            except (sqlite3.Error, OSError) as exc:
                raise translate(exc, self.path, "opening the store") from None

    def _open(self) -> sqlite3.Connection:
        """A migrated connection; closed again if anything fails."""
        db = self._open_readonly() if self.readonly else self._open_writable()
        try:
            self.db = db
            self._migrate()
        except BaseException:
            db.close()
            raise
        return db

    def _open_writable(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout={failures.BUSY_TIMEOUT_MS}")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            db.close()
            raise
        return db

    def _open_readonly(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        try:
            return _checked(f"{uri}?mode=ro", f"PRAGMA busy_timeout={failures.BUSY_TIMEOUT_MS}")
        except sqlite3.OperationalError:
            # A WAL store in a folder we may not write: no -shm can be made. Read it as it is
            # on disk (nothing else may be writing to it then).
            return _checked(f"{uri}?immutable=1")

    @classmethod
    def in_dir(
        cls, results_dir: str | Path, *, readonly: bool = False, create: bool = True
    ) -> Store:
        """The store of a results directory."""
        return cls(Path(results_dir) / STORE_NAME, readonly=readonly, create=create)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def _migrate(self) -> None:
        known = [name for name, _ in MIGRATIONS]
        if self._applied() == set(known):
            return
        if self.readonly:
            done = self._applied()
            if done - set(known):
                raise self._newer(done - set(known))
            raise StoreCorrupt(
                f"{self.path} was written by an older promptgrid and needs an upgrade that a "
                "read-only open cannot make: open it once writable (run anything with this "
                "--results-dir)"
            )
        # Exclusive, then look again: another process may have migrated while we waited.
        self.db.execute("BEGIN EXCLUSIVE")
        try:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS migrations "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = self._applied()
            if done - set(known):
                raise self._newer(done - set(known))
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                for statement in statements(sql):
                    self.db.execute(statement)
                self.db.execute("INSERT INTO migrations VALUES (?, ?)", (name, now()))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _applied(self) -> set[str]:
        try:
            return {row[0] for row in self.db.execute("SELECT name FROM migrations")}
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return set()
            raise

    def _newer(self, names: set[str]) -> StoreError:
        return StoreCorrupt(
            f"{self.path} was written by a newer promptgrid (migrations {sorted(names)}); "
            "upgrade promptgrid or use another --results-dir"
        )

    def transaction(self) -> _Transaction:
        """``with store.transaction():`` — one atomic, durable write."""
        return _Transaction(self.db)

    # ------------------------------------------------------------------ runs

    @guarded("recording a new run")
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
        """Record a new run as ``running`` (not yet owned: see :func:`.leases.acquire`)."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO runs (run_id, experiment, source, spec_json, columns_json, "
                "options_json, total, status, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, experiment, source, dumps(spec), dumps(columns), dumps(options), total,
                 "running", now()),
            )  # fmt: skip

    @guarded("reading the runs")
    def runs(self, experiment: str | None = None) -> list[RunInfo]:
        """All runs, newest first (optionally of one experiment). A run whose owner died shows
        as ``interrupted``."""
        sql = "SELECT * FROM runs"
        args: tuple[Any, ...] = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            args = (experiment,)
        rows = self.db.execute(sql + " ORDER BY run_id DESC", args).fetchall()
        owners = self._live_owners()
        return [_run_info(row, owners) for row in rows]

    @guarded("reading a run")
    def run(self, run_id: str) -> RunInfo | None:
        """One run, or None."""
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run_info(row, self._live_owners()) if row else None

    def _live_owners(self) -> dict[str, str]:
        at = time.time()
        return {
            owner: f"{pid}@{host}"
            for owner, pid, host, beat in self.db.execute("SELECT * FROM owners")
            if alive(pid, host, beat, at)
        }

    @guarded("counting results")
    def counts(self, run_id: str) -> dict[str, int]:
        """Result rows of a run by status (ok / error), plus cached."""
        rows = self.db.execute(  # one pass over the run's rows (a merge counts a million)
            "SELECT status, COUNT(*), SUM(cached = 1) FROM results WHERE run_id = ? "
            "GROUP BY status",
            (run_id,),
        ).fetchall()
        out = {status: n for status, n, _ in rows}
        out["cached"] = sum(cached for *_, cached in rows)
        return out

    @guarded("adding up the spend")
    def spend(self, run_id: str) -> float:
        """USD the run has paid for: its answers and its judges' that were not cached."""
        row = self.db.execute(
            "SELECT (SELECT COALESCE(SUM(cost_usd), 0) FROM results "
            "WHERE run_id = ?1 AND cached = 0 AND status = 'ok') + "
            "(SELECT COALESCE(SUM(cost_usd), 0) FROM judge_calls "
            "WHERE run_id = ?1 AND cached = 0 AND status = 'ok')",
            (run_id,),
        ).fetchone()
        return float(row[0])

    # ------------------------------------------------------------------ cells

    @guarded("reading which cells are done")
    def indexes(self, run_id: str, status: str | None = None) -> set[int]:
        """Cell indexes of a run that have a result row (of ``status``): the cells to skip."""
        sql, args = "SELECT idx FROM results WHERE run_id = ?", [run_id]
        if status is not None:
            sql, args = sql + " AND status = ?", [run_id, status]
        return {row[0] for row in self.db.execute(sql, args)}

    @guarded("reading the cache")
    def newest_response(self) -> int:
        """The id of the newest stored answer (0 if none): answers after it are new."""
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM responses").fetchone()[0])

    @guarded("reading the cache")
    def count_answered(self, cell_ids: Iterable[str]) -> int:
        """How many of these distinct requests already have an answer."""
        ids = cell_ids if isinstance(cell_ids, set) else set(cell_ids)
        stored = self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        if not stored or not ids:
            return 0
        if stored < len(ids):  # fewer answers than cells: scan the answers
            cursor = self.db.execute("SELECT DISTINCT cell_id FROM responses")
            return sum(1 for (cell_id,) in cursor if cell_id in ids)
        found = 0
        chunk: list[str] = []
        for cell_id in ids:
            chunk.append(cell_id)
            if len(chunk) == 500:
                found += self._count_in(chunk)
                chunk = []
        return found + (self._count_in(chunk) if chunk else 0)

    def _count_in(self, chunk: list[str]) -> int:
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT COUNT(DISTINCT cell_id) FROM responses WHERE cell_id IN ({marks})"
        return int(self.db.execute(sql, chunk).fetchone()[0])

    @guarded("reading stored answers")
    def answer_stats(self) -> dict[tuple[str, str], tuple[int, float | None, float | None]]:
        """Per (endpoint, model) of the stored answers: how many, their mean completion tokens
        and the mean latency of the calls that made them."""
        rows = self.db.execute(
            "SELECT json_extract(q.request_json, '$.endpoint'), "
            "json_extract(q.request_json, '$.model'), COUNT(*), AVG(a.completion_tokens), "
            "AVG(a.latency_s) FROM responses a JOIN requests q ON q.cell_id = a.cell_id "
            "GROUP BY 1, 2"
        ).fetchall()
        return {(endpoint, model): (n, tokens, latency) for endpoint, model, n, tokens, latency
                in rows}  # fmt: skip

    @guarded("claiming requests")
    def claim(
        self, cell_ids: Sequence[str], owner: Owner, *, after: int | None
    ) -> list[int | bool | str]:
        """For each request: the id of an answer already stored (newer than ``after``; with
        ``after`` None, no answer counts), ``True`` when it is now this owner's to send, or the
        live owner (``pid@host``) already sending it."""
        return self.commit([], [(c, True) for c in cell_ids], owner, after=after)[1]

    @guarded("writing results")
    def write(self, rows: Sequence[ResultRow], owner: Owner | None = None) -> list[int | None]:
        """Commit finished cells in one transaction (durable when this returns), and drop the
        owner's claims on them. Returns the response id each row points at (None for errors)."""
        return self.commit(rows, [], owner or Owner.me(), after=None)[0]

    @guarded("writing results")
    def commit(
        self,
        rows: Sequence[ResultRow],
        asks: Sequence[tuple[str, bool]],
        owner: Owner,
        *,
        after: int | None,
    ) -> tuple[list[int | None], list[int | bool | str]]:
        """One transaction: commit finished cells (dropping this owner's claims on them), then
        answer each ask ``(cell_id, claim)``: a stored answer's id (newer than ``after``; none
        counts with ``after`` None), else ``True`` — claimed for this owner when ``claim``
        (free endpoints only look) — or the live owner (``pid@host``) already sending it."""
        at = time.time()
        with self.transaction():
            ids = self._write_rows(rows, owner) if rows else []
            answers: list[int | bool | str] = []
            found = self._answers([c for c, _ in asks], after) if asks else {}
            if any(claim and c not in found for c, claim in asks):
                beat(self.db, owner, at)
            for cell_id, claim in asks:
                if cell_id in found:
                    answers.append(found[cell_id])
                elif claim:
                    answers.append(self._claim(cell_id, owner, at))
                else:
                    answers.append(True)
            return ids, answers

    def _answers(self, cell_ids: Sequence[str], after: int | None) -> dict[str, int]:
        """The newest stored answer (newer than ``after``) of each of these requests."""
        if after is None:
            return {}
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(cell_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                self.db.execute(
                    f"SELECT cell_id, MAX(id) FROM responses WHERE cell_id IN ({marks}) "
                    "AND id > ? GROUP BY cell_id",
                    [*chunk, after],
                ).fetchall()
            )
        return found

    def _claim(self, cell_id: str, owner: Owner, at: float) -> bool | str:
        row = self.db.execute(
            "SELECT o.owner, o.pid, o.host, o.heartbeat FROM claims c "
            "JOIN owners o ON o.owner = c.owner WHERE c.cell_id = ?",
            (cell_id,),
        ).fetchone()
        if row is not None and row[0] != owner.id and alive(row[1], row[2], row[3], at):
            return f"{row[1]}@{row[2]}"
        self.db.execute(
            "INSERT INTO claims (cell_id, owner, claimed_at) VALUES (?,?,?) "
            "ON CONFLICT (cell_id) DO UPDATE SET owner = excluded.owner, "
            "claimed_at = excluded.claimed_at",
            (cell_id, owner.id, at),
        )
        return True

    def _write_rows(self, rows: Sequence[ResultRow], owner: Owner) -> list[int | None]:
        """Insert rows with one statement per table. New answers get their ids here: the
        transaction holds the write lock, so the next ids are ours."""
        at = now()
        db = self.db
        next_id = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM responses").fetchone()[0]
        ids: list[int | None] = []
        answers, choices, results, attempts, judged = [], [], [], [], []
        text = _Texts()  # rows of one grid block share their vars, rows of a combo its params
        for row in rows:
            response_id = row.response_id
            if (a := row.answer) is not None:
                response_id, next_id = next_id, next_id + 1
                answers.append(
                    (response_id, row.cell_id, a.response, a.finish_reason, a.prompt_tokens,
                     a.completion_tokens, a.cached_tokens, a.reasoning_tokens, a.resolved_model,
                     a.request_id, a.latency_s, a.cost_usd,
                     dumps(a.rate_limits) if a.rate_limits else "{}", at,
                     a.tool_calls, a.refusal, a.logprobs, a.parsed, a.parse_error,
                     a.reasoning_summary, a.ttft_s, a.tokens_per_s)
                )  # fmt: skip
                choices += [
                    (response_id, i, c.response, c.finish_reason, c.tool_calls, c.refusal,
                     c.logprobs, c.parsed, c.parse_error)
                    for i, c in enumerate(a.choices)
                ]  # fmt: skip
            ids.append(response_id)
            if row.score is not None:
                judged.append(
                    (row.run_id, row.idx, row.score, row.cell_id, row.status, response_id,
                     row.error_type, row.http_status, row.error, len(row.attempts), row.latency_s,
                     row.cost_usd, int(row.cached))
                )  # fmt: skip
                continue  # its attempts are counted, not kept one by one
            results.append(
                (row.run_id, row.idx, row.cell_id, row.prompt, text(row.vars),
                 text(row.params), row.repeat, row.status, response_id, row.error_type,
                 row.http_status, row.error, len(row.attempts), row.latency_s, row.cost_usd,
                 int(row.cached), row.batch_id)
            )  # fmt: skip
            attempts += [
                (row.run_id, row.idx, x.get("number", i + 1), x["status"], x.get("error_type"),
                 x.get("http_status"), x.get("error"), x.get("latency_s"), at)
                for i, x in enumerate(row.attempts)
            ]  # fmt: skip
        # A row that was sent brings its request; a cached or shared one points at a request
        # stored with the answer it reuses.
        db.executemany(
            "INSERT OR IGNORE INTO requests (cell_id, request_json) VALUES (?, ?)",
            [(row.cell_id, _recorded(dumps(row.request))) for row in rows if row.attempts],
        )
        db.executemany(
            "INSERT INTO responses (id, cell_id, response, finish_reason, prompt_tokens, "
            "completion_tokens, cached_tokens, reasoning_tokens, resolved_model, request_id, "
            "latency_s, cost_usd, rate_limits_json, created_at, tool_calls_json, refusal, "
            "logprobs_json, parsed_json, parse_error, reasoning_summary, ttft_s, tokens_per_s) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            answers,
        )
        if choices:
            db.executemany(
                "INSERT INTO choices (response_id, choice, response, finish_reason, "
                "tool_calls_json, refusal, logprobs_json, parsed_json, parse_error) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                choices,
            )
        db.executemany(
            "INSERT OR REPLACE INTO results (run_id, idx, cell_id, prompt, vars_json, params_json, "
            "repeat, status, response_id, error_type, http_status, error, attempts, latency_s, "
            "cost_usd, cached, batch_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            results,
        )
        db.executemany(
            "INSERT INTO attempts (run_id, idx, attempt, status, error_type, http_status, "
            "error, latency_s, at) VALUES (?,?,?,?,?,?,?,?,?)",
            attempts,
        )
        if judged:  # a verdict made (and paid for) once is kept; an error is replaced
            db.executemany(
                "INSERT INTO judge_calls (run_id, idx, name, cell_id, status, response_id, "
                "error_type, http_status, error, attempts, latency_s, cost_usd, cached) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, idx, name, cell_id) "
                "DO UPDATE SET status = excluded.status, response_id = excluded.response_id, "
                "error_type = excluded.error_type, http_status = excluded.http_status, "
                "error = excluded.error, attempts = excluded.attempts, "
                "latency_s = excluded.latency_s, cost_usd = excluded.cost_usd, "
                "cached = excluded.cached WHERE judge_calls.status != 'ok'",
                judged,
            )
        # Only requests sent online were claimed (a batch's were not: they are not on the wire).
        sent = [(row.cell_id, owner.id) for row in rows if row.attempts and row.batch_id is None]
        if sent:
            db.executemany("DELETE FROM claims WHERE cell_id = ? AND owner = ?", sent)
        return ids

    def result_rows(self, run_id: str, batch: int = 5000) -> Iterator[list[sqlite3.Row]]:
        """The result table of a run in cell order, in batches (joined with requests/answers).

        Text that is not UTF-8 (another program wrote it) is read with U+FFFD for what cannot be
        decoded, with a :class:`~promptgrid.errors.PromptgridWarning`; promptgrid writes none."""
        done = 0
        try:
            try:
                for rows in self._result_rows(run_id, batch, 0):
                    done += len(rows)
                    yield rows
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith("Could not decode"):
                    raise
                warnings.warn(
                    f"{self.path}: run {run_id} holds text that is not UTF-8: read with U+FFFD "
                    "for the bytes that are not valid",
                    PromptgridWarning,
                    stacklevel=2,
                )
                self.db.text_factory = _lenient_text
                try:
                    yield from self._result_rows(run_id, batch, done)
                finally:
                    self.db.text_factory = str
        except (sqlite3.Error, OSError) as exc:
            raise translate(exc, self.path, "reading results") from None

    def _result_rows(self, run_id: str, batch: int, skip: int) -> Iterator[list[sqlite3.Row]]:
        cursor = self.db.cursor()
        cursor.row_factory = sqlite3.Row
        several = self.db.execute(SEVERAL_SQL, (run_id,)).fetchone() is not None
        cursor.execute(RESULTS_SQL if several else ONE_CHOICE_SQL, (run_id,))
        while skip > 0 and (skipped := cursor.fetchmany(min(skip, batch))):
            skip -= len(skipped)
        while rows := cursor.fetchmany(batch):
            yield rows

    @guarded("reading attempts")
    def attempt_history(self, run_id: str) -> list[sqlite3.Row]:
        """Every attempt of every cell of a run, in order."""
        cursor = self.db.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY idx, rowid", (run_id,)
        ).fetchall()


def _lenient_text(data: bytes) -> str:
    """Text as SQLite holds it, bytes that are not UTF-8 as U+FFFD."""
    return data.decode("utf-8", "replace")


#: An image sent as a data URL (an ``image_url``'s ``url``), as the ``requests`` table holds it:
#: (media type, base64 text). Only a JSON key ``"url"`` matches: the same characters inside a
#: text are escaped (``\\"url\\"``), so a prompt that quotes a data URL is recorded as written.
_DATA_URL = re.compile(r'"url":"data:([\w.+-]+/[\w.+-]+);base64,([A-Za-z0-9+/=]*)"')


def _recorded(request_json: str) -> str:
    """A request as ``requests`` records it: every image sent as a data URL, whatever its size,
    is recorded by its media type, size and SHA-256 (``sha256sum`` of the file), not its
    base64. The request's hash (the ``cell_id``) covered the image itself; the file is where
    the experiment points, and the ``messages`` column shows this record."""
    if ";base64," not in request_json:
        return request_json

    def short(match: re.Match[str]) -> str:
        media, text = match.groups()
        try:
            data = base64.b64decode(text, validate=True)
        except binascii.Error:  # a data URL written in the file, and not valid base64
            digest = hashlib.sha256(text.encode("ascii")).hexdigest()
            size = f"{len(text):,} characters, not base64"
        else:
            digest = hashlib.sha256(data).hexdigest()
            size = f"{len(data):,} bytes"
        return f'"url":"data:{media};base64,<{size}, sha256:{digest}>"'

    return _DATA_URL.sub(short, request_json)


class _Texts:
    """The JSON of rows' vars and params, made once per mapping: the grid hands every cell of
    a block one vars mapping and every cell of a parameter combination one params mapping
    (rows of one commit; the mappings are kept, so an id is never reused meanwhile)."""

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: dict[int, tuple[object, str]] = {}

    def __call__(self, value: Mapping[str, Any]) -> str:
        found = self._made.get(id(value))
        if found is None:
            found = self._made[id(value)] = (value, dumps(value))
        return found[1]


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except BaseException:
                # A failed COMMIT (disk full) may already have rolled back: never let a
                # ROLLBACK error hide the real one.
                if self.db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")


def _run_info(row: tuple[Any, ...], live: dict[str, str]) -> RunInfo:
    run_id, experiment, source, spec, columns, options, total, status, created, finished = row[:10]
    owner = live.get(row[10]) if len(row) > 10 and row[10] else None
    if status == "running" and owner is None:
        status = "interrupted"  # its process died (kill -9, power loss) without saying so
    return RunInfo(
        run_id, experiment, source, json.loads(spec), [tuple(c) for c in json.loads(columns)],
        json.loads(options), total, status, created, finished, owner,
    )  # fmt: skip


def _checked(uri: str, *pragmas: str) -> sqlite3.Connection:
    """A read-only connection that can read the schema; closed again if it cannot."""
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        for pragma in pragmas:
            db.execute(pragma)
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except BaseException:
        db.close()
        raise
    return db
