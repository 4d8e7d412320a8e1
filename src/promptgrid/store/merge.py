"""The merge: shards' stores joined into one store as one run, store to store.

:func:`merge` reads each source's shard runs (read-only), lets
:func:`promptgrid.shards.plan_merge` choose one run per shard, then copies each source into the
output store in one transaction with the source ATTACHed read-only. So a source is read in one
snapshot — its lease is checked in that snapshot, and a shard found running is refused, never
read half-way — and the output holds all of a source's part or none of it.

Into a folder with no store yet (the usual case), the store is built in a file beside the
output's and linked in place when it is whole, so a failing merge leaves nothing there. Nobody
else sees that file: it is written without a journal or syncs (synced once at the end), and its
secondary indexes are made after the copy, sorting once instead of inserting a million rows in
hash order. Every copy is one ``INSERT ... SELECT`` per table, rows in the order of the output's
key; no row passes through Python.

What is copied, keyed by request hash, so the cache and the results join as they would have on
one machine:

- the whole cache: every request and answer (with its choices) a source holds, not only its
  shard's, so the merged store answers what any machine paid for. Answers get new ids (the
  rows pointing at them follow); an answer the output already holds — the same request
  answered at the same instant, a copy of one answer — is kept once;
- the chosen runs' rows, under the merged run's id: results, attempts, judge calls, scores.

Not copied: leases and claims (the state of processes, not results), and batch chunks (a shard
with batches out is unfinished: collect it where it ran, then merge again).

The merged run is a run of the whole grid: ``resume`` fills its missing cells on one machine,
``retry`` sends its error rows again. It keeps the shards' provider, base URL, cache setting
and formats, not their limits and budgets (each shard's own), and records its grid in its
configuration (``merged``) and its shards in ``shards``. Merging again (a missing shard came
in, one was resumed) updates the same merged run: a shard whose run has not changed is left as
it is, another's rows are replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import RunOwned, StoreError, UsageError
from ..shards import GridShare, MergePlan, ShardRun, plan_merge, shard_of
from . import leases
from .core import STORE_NAME, Store
from .failures import translate
from .owners import Owner, alive
from .records import RunInfo, now

__all__ = ["merge", "shard_runs"]

#: The page cache of a merge into a new store, in KiB. Measured on a million rows: 32 MB, 128 MB
#: and 256 MB take the same CPU time (rows go in in key order), with a peak resident memory of
#: 127, 271 and 409 MB.
_CACHE_KIB = 32 * 1024

#: A shard's settings that were its own (its part, its limits and budget, its store's answer
#: ids): not the merged run's.
_OWN = ("shard", "cache_floor", "rpm", "tpm", "concurrency", "max_cost")


def merge(
    sources: Sequence[Path], output: Path, *, run_id: str, experiment: str | None = None
) -> tuple[MergePlan, RunInfo]:
    """Merge the shards in the ``sources`` results folders into ``output``'s store; the plan
    followed and the merged run (``run_id`` if it is new). Only shards of ``experiment``, if
    given. A folder given twice counts once."""
    folders = _folders(sources, output)
    found = [(folder, *shard_runs(folder, experiment)) for folder in folders]
    for folder, runs, _ in found:
        if experiment is not None and not runs:
            raise UsageError(f"{folder} holds no shard of experiment {experiment!r}")
    plan = plan_merge([(folder, runs) for folder, runs, _ in found])
    infos = {key: info for _, _, infos in found for key, info in infos.items()}
    by_source: defaultdict[Path, list[ShardRun]] = defaultdict(list)
    for _, run in sorted(plan.chosen.items()):
        by_source[run.source].append(run)
    first = infos[plan.chosen[min(plan.chosen)].run_id]

    def into(store: Store) -> RunInfo:
        return _merge_into(store, plan, first, by_source, run_id)

    target = Path(output) / STORE_NAME
    info = None if target.exists() else _aside(Path(output), into)
    if info is None:  # the output holds a store (or one appeared while merging aside)
        with Store(target) as store:
            info = into(store)
    return plan, info


def _merge_into(
    store: Store,
    plan: MergePlan,
    first: RunInfo,
    by_source: Mapping[Path, Sequence[ShardRun]],
    run_id: str,
) -> RunInfo:
    """The merge into ``store``, each source in a transaction of its own; the merged run."""
    owner = Owner.me()
    merged, fresh = _merged_run(store, plan, first, run_id)
    leases.acquire(store, merged, owner)  # another merge into this run: RunOwned
    status = "incomplete"
    try:
        store.db.create_function("pg_shard", 2, shard_of, deterministic=True)
        for folder, runs in by_source.items():
            _copy_source(store, folder, runs, merged, fresh)
        status = _status(store, merged, plan)
    finally:
        with contextlib.suppress(StoreError):
            leases.release(store, merged, owner, status)
    info = store.run(merged)
    assert info is not None
    return info


def _aside(output: Path, work: Callable[[Store], RunInfo]) -> RunInfo | None:
    """A new output store, made by ``work`` in a file beside it and put in place whole when
    done: a failure leaves nothing. Being new and unseen, the file is written without a journal
    or syncs, with its secondary indexes made at the end (sorting once is cheaper than inserting
    a million rows in hash order), then synced, then linked in place. None (nothing written) if
    a store appeared there meanwhile (another merge, a run): merge into it then."""
    made = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    aside = output / f".merging-{uuid.uuid4().hex[:16]}.{STORE_NAME}"  # SQLite makes it
    try:
        with Store(aside) as store:
            info = _built(store, work)
        with open(aside, "rb") as file:  # written without syncs: durable before it is seen
            os.fsync(file.fileno())
        target = output / STORE_NAME
        try:
            os.link(aside, target)  # never over a store that appeared meanwhile
        except FileExistsError:
            return None
        except OSError:  # a file system without hard links
            if target.exists():
                return None
            os.replace(aside, target)
        _sync_folder(output)
        return info
    except (sqlite3.Error, OSError) as exc:
        raise translate(exc, output / STORE_NAME, "merging") from None
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{aside}{suffix}")
        if made:
            with contextlib.suppress(OSError):
                output.rmdir()  # only if empty: nothing was put in place


def _built(store: Store, work: Callable[[Store], RunInfo]) -> RunInfo:
    """``work`` on a new store no other process sees: no journal, no syncs, a bigger page cache,
    secondary indexes dropped before and made again after (the same SQL: the same schema)."""
    db = store.db
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
    db.execute(_PUT_OFF)
    db.execute(
        "INSERT INTO temp.put_off SELECT name, sql FROM sqlite_master "
        "WHERE type = 'index' AND sql IS NOT NULL"
    )
    for (index,) in db.execute("SELECT name FROM temp.put_off").fetchall():
        db.execute(f'DROP INDEX "{index}"')
    info = work(store)
    for (index,) in db.execute("SELECT name FROM temp.put_off").fetchall():
        _put_back(db, index)
    db.execute("PRAGMA journal_mode=WAL")  # as every store is
    return info


#: The secondary indexes a merge into a new store has dropped, to make at the end.
_PUT_OFF = "CREATE TEMP TABLE IF NOT EXISTS put_off (name TEXT PRIMARY KEY, sql TEXT NOT NULL)"


def _put_back(db: sqlite3.Connection, index: str) -> None:
    """A secondary index the merge dropped, made again now (nothing if it was not dropped)."""
    db.execute(_PUT_OFF)
    row = db.execute("SELECT sql FROM temp.put_off WHERE name = ?", (index,)).fetchone()
    if row is not None:
        db.execute(row[0])
        db.execute("DELETE FROM temp.put_off WHERE name = ?", (index,))


def _sync_folder(folder: Path) -> None:
    """The folder's entry of a new file made durable (where the platform can)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def shard_runs(
    folder: Path, experiment: str | None = None
) -> tuple[list[ShardRun], dict[str, RunInfo]]:
    """The shard runs a results folder holds (of ``experiment``, if given), and their
    :class:`RunInfo` by run id."""
    with Store.in_dir(folder, readonly=True) as store:
        infos = [info for info in store.runs(experiment) if info.options.get("shard")]
        runs = []
        for info in infos:
            counts = store.counts(info.run_id)
            ok = counts.get("ok", 0)
            share = GridShare.of_record(info.options["shard"], info.total)
            scores = _digest(info.spec.get("scores"))
            runs.append(ShardRun(folder, info.run_id, info.experiment, share, info.status,
                                 ok + counts.get("error", 0), ok, scores, info.owner))  # fmt: skip
    return runs, {info.run_id: info for info in infos}


def _folders(sources: Sequence[Path], output: Path) -> list[Path]:
    """The sources' results folders (a store file names its folder), each once."""
    if not sources:
        raise UsageError("merge needs the results folders of the shards")
    folders: dict[Path, Path] = {}
    for source in map(Path, sources):
        folder = source.parent if source.name == STORE_NAME else source
        folders.setdefault(folder.resolve(), folder)
    if Path(output).resolve() in folders:
        raise UsageError(
            f"the output {output} is one of the shards' folders: merge into another folder "
            "(a new one, or one that holds other runs)"
        )
    return list(folders.values())


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value or {}, sort_keys=True).encode()).hexdigest()[:16]


def _merged_run(store: Store, plan: MergePlan, first: RunInfo, run_id: str) -> tuple[str, bool]:
    """The output's merged run of this grid (cut alike), or a new one; whether it is new."""
    row = store.db.execute(
        "SELECT run_id FROM runs WHERE json_extract(options_json, '$.merged.grid') = ? "
        "AND json_extract(options_json, '$.merged.count') = ? ORDER BY run_id DESC LIMIT 1",
        (plan.grid, plan.count),
    ).fetchone()
    if row is not None:
        return str(row[0]), False
    record = {k: v for k, v in first.options.items() if k not in _OWN}
    record["merged"] = {"grid": plan.grid, "count": plan.count, "cells": plan.cells}
    if record.get("use_cache") is False:  # answers copied from now on are the run's own
        record["cache_floor"] = store.newest_response()
    store.create_run(run_id, first.experiment, first.source, first.spec, first.columns,
                     plan.cells, record)  # fmt: skip
    return run_id, True


def _copy_source(
    store: Store, folder: Path, runs: Sequence[ShardRun], merged: str, fresh: bool
) -> None:
    """One source into the output, in one transaction reading one snapshot of it."""
    doing = f"merging the shards in {folder}"
    db = store.db
    try:
        _attach(db, folder / STORE_NAME)
        try:
            with store.transaction():
                offset = store.newest_response()
                live = _snapshot(db, runs)  # the first read of the source: its snapshot
                answer = _copy_cache(db, offset)
                for run in runs:
                    _copy_rows(db, run, live[run.run_id], merged, fresh, answer)
        finally:
            db.execute("DETACH DATABASE src")
    except (sqlite3.Error, OSError) as exc:
        raise translate(exc, store.path, doing) from None


def _attach(db: sqlite3.Connection, path: Path) -> None:
    """ATTACH a source store read-only as ``src`` (as it is on disk when its folder cannot be
    written: no other process can be writing it then)."""
    uri = path.resolve().as_uri()
    db.execute("ATTACH DATABASE ? AS src", (f"{uri}?mode=ro",))
    try:
        db.execute("SELECT COUNT(*) FROM src.sqlite_master").fetchone()
    except sqlite3.OperationalError:
        db.execute("DETACH DATABASE src")
        db.execute("ATTACH DATABASE ? AS src", (f"{uri}?immutable=1",))


#: What a shard's run holds in the snapshot: status (as ``runs`` shows it), cells, done, ok.
_Held = tuple[str, int, int, int]


def _snapshot(db: sqlite3.Connection, runs: Sequence[ShardRun]) -> dict[str, _Held]:
    """Each run as the snapshot holds it; :class:`RunOwned` if one is being executed."""
    held: dict[str, _Held] = {}
    at = time.time()
    for run in runs:
        row = db.execute(
            "SELECT r.status, r.total, o.pid, o.host, o.heartbeat, c.done, c.ok "
            "FROM src.runs r LEFT JOIN src.owners o ON o.owner = r.owner, "
            "(SELECT COUNT(*) AS done, COALESCE(SUM(status = 'ok'), 0) AS ok FROM src.results "
            "WHERE run_id = ?1) c WHERE r.run_id = ?1",
            (run.run_id,),
        ).fetchone()
        if row is None:
            raise UsageError(f"{run} is gone from its store: merge again")
        status, total, pid, host, beat, done, ok = row
        owned = pid is not None and alive(pid, host, beat, at)
        if owned:
            raise RunOwned(
                f"{run} started running (process {pid}@{host}): a merge reads finished work "
                "only; let it finish (or stop it), then merge"
            )
        held[run.run_id] = ("interrupted" if status == "running" else status, total, done, ok)
    return held


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    """The columns of ``table`` both stores have (an older source lacks the newest)."""
    theirs = {row[1] for row in db.execute(f"PRAGMA src.table_info({table})")}
    return [row[1] for row in db.execute(f"PRAGMA main.table_info({table})") if row[1] in theirs]


def _copy(
    db: sqlite3.Connection,
    table: str,
    rest: str,
    args: Sequence[object] = (),
    replaced: dict[str, str] | None = None,
    verb: str = "INSERT",
) -> None:
    """``INSERT INTO main.table (columns) SELECT s.columns <rest>``, some columns replaced
    by expressions (``rest`` names the source table ``s``)."""
    columns = _columns(db, table)
    values = ", ".join((replaced or {}).get(c, f"s.{c}") for c in columns)
    db.execute(f"{verb} INTO main.{table} ({', '.join(columns)}) SELECT {values} {rest}", args)


def _copy_cache(db: sqlite3.Connection, offset: int) -> str:
    """Every request and answer of the source; the SQL expression of the output's id of the
    answer a source's column ``{}`` points at. An answer gets the id ``offset`` past its own,
    unless the output holds it already (the same request, answered at the same instant).
    Rows go in in the order of the output's key, so each is added where the last one was."""
    changes = db.total_changes
    _copy(db, "requests", "FROM src.requests s ORDER BY s.cell_id", verb="INSERT OR IGNORE")
    new_requests = db.total_changes - changes
    db.execute("CREATE TEMP TABLE IF NOT EXISTS held (src INTEGER PRIMARY KEY, dst INTEGER)")
    db.execute("DELETE FROM temp.held")
    requests = db.execute("SELECT COUNT(*) FROM src.requests").fetchone()[0]
    # An answer's request is stored with it, so an answer the output holds has its request
    # there: a source none of whose requests the output held holds none of its answers.
    if offset and new_requests < requests:  # which of these answers the output holds
        _put_back(db, "responses_cell")  # the look-up reads it
        db.execute(  # one look-up an answer (a scalar subquery here was made twice)
            "INSERT INTO temp.held SELECT s.id, MIN(m.id) FROM src.responses s "
            "JOIN main.responses m ON m.cell_id = s.cell_id AND m.created_at = s.created_at "
            "GROUP BY s.id"
        )
    moved = f"s.{{0}} + {offset:d}"
    if db.execute("SELECT 1 FROM temp.held LIMIT 1").fetchone() is not None:
        moved = f"COALESCE((SELECT h.dst FROM temp.held h WHERE h.src = s.{{0}}), {moved})"
    new = "WHERE s.{} NOT IN (SELECT src FROM temp.held)"
    _copy(db, "responses", "FROM src.responses s " + new.format("id"), (),
          {"id": moved.format("id")})  # fmt: skip
    _copy(db, "choices", "FROM src.choices s " + new.format("response_id"), (),
          {"response_id": moved.format("response_id")})  # fmt: skip
    return moved.format("response_id")


def _copy_rows(db: sqlite3.Connection, run: ShardRun, held: _Held, merged: str, fresh: bool,
               answer: str) -> None:  # fmt: skip
    """A shard run's rows under the merged run's id (the ones it had replaced), ``answer`` the
    output's answer id of a row's ``response_id``, and its row in ``shards``."""
    index, count = run.shard.index, run.shard.count
    status, cells, done, ok = held
    before = db.execute(
        "SELECT source_run, status, done, ok FROM shards WHERE run_id = ? AND shard = ?",
        (merged, index),
    ).fetchone()
    if before == (run.run_id, status, done, ok):
        return  # merged before as it is now
    if not fresh:
        _drop_shard(db, merged, index, count)
    where = "WHERE s.run_id = ? ORDER BY s.idx"
    own = {"run_id": "?"}
    answered = {**own, "response_id": answer}
    _copy(db, "results", f"FROM src.results s {where}", (merged, run.run_id), answered)
    _copy(db, "attempts", f"FROM src.attempts s {where}, s.rowid", (merged, run.run_id), own)
    _copy(db, "judge_calls", f"FROM src.judge_calls s {where}", (merged, run.run_id), answered)
    _copy(db, "scores", f"FROM src.scores s {where}", (merged, run.run_id), own)
    db.execute(
        "INSERT OR REPLACE INTO shards (run_id, shard, count, source, source_run, status, "
        "cells, done, ok, merged_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (merged, index, count, str(run.source.resolve()), run.run_id, status, cells, done,
         ok, now()),
    )  # fmt: skip


def _drop_shard(db: sqlite3.Connection, merged: str, index: int, count: int) -> None:
    """The merged run's rows of one shard, gone (before its newer run's are copied)."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS gone (idx INTEGER PRIMARY KEY)")
    db.execute("DELETE FROM temp.gone")
    db.execute(
        "INSERT INTO temp.gone SELECT idx FROM main.results "
        "WHERE run_id = ? AND pg_shard(cell_id, ?) = ?",
        (merged, count, index),
    )
    for table in ("attempts", "judge_calls", "scores", "results"):
        db.execute(
            f"DELETE FROM main.{table} WHERE run_id = ? AND idx IN (SELECT idx FROM temp.gone)",
            (merged,),
        )


def _status(store: Store, merged: str, plan: MergePlan) -> str:
    """``finished`` when every shard is in, finished; else ``incomplete``."""
    rows = store.db.execute(
        "SELECT status, cells, done FROM shards WHERE run_id = ? AND count = ?",
        (merged, plan.count),
    ).fetchall()
    complete = len(rows) == plan.count and all(
        status == "finished" and done >= cells for status, cells, done in rows
    )
    return "finished" if complete else "incomplete"
