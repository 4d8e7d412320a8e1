"""Merge benchmark (issue 25): 10 shards of 100,000 rows each joined into one run.

    .venv/bin/python benchmarks/bench_merge.py [--shards 10] [--rows 100000] [--repeats 3]
        [--jobs 2] [--keep DIR]

Target: the merge in <= 10 s at <= 300 MB peak RSS. The sources are the 10 shards of a
1,000,000-cell echo grid (1,000 × 1,000 vars), each written as ``promptgrid run FILE --shard
I/10`` on the echo provider writes it, through the store's own write path: the run (its shard
and the grid's digest recorded) and its lease, per cell its request, answer, result row and
attempt in commits of 5,000 rows, then the run released as finished. The parent walks the
grid's ids once (the walk a shard's run makes to record the grid) and hands each shard its
cells' indexes; ``--jobs`` child processes then write the shards at once, each rendering only
its shards' cells (built once, not timed; ``--keep DIR`` keeps them for the next run).

Timed, each in a child process (CPU seconds and peak memory from ``wait4``), turn about,
``--repeats`` times, each into a new output folder; printed as median (min-max), with the load
average at the start and the end:

- **baseline**: a plain SQLite copy of the same rows — the output store created, each source
  ATTACHed, ``INSERT INTO ... SELECT`` of its requests, answers (ids moved past the output's),
  result rows and attempts: no snapshot check, no de-duplication, no id remapping;
- **merge**: ``promptgrid.store.merge.merge`` — what ``promptgrid merge`` does to the store;
- **merge + files** (once): the whole ``promptgrid merge`` command, with the run's default
  files (parquet and CSV of the 1,000,000 rows) written, as a run's end writes them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from array import array
from contextlib import closing
from pathlib import Path

PROMPTGRID = str(Path(sys.executable).with_name("promptgrid"))
TARGET_S, TARGET_MB = 10.0, 300.0


def build(folder: Path, count: int, rows: int, jobs: int) -> list[Path]:
    """The shards' results folders of a grid of ``count`` × ``rows`` echo cells, written by
    ``jobs`` child processes at once (see :func:`build_shard`)."""
    from promptgrid.api import Experiment
    from promptgrid.config import RunOptions, resolve
    from promptgrid.grid import cell_ids
    from promptgrid.shards import Shard, shard_of, survey

    values = ", ".join(str(i) for i in range(1000))
    path = folder / "grid.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: bench-merge
        provider: echo
        prompts:
          p: "Name {{{{ a }}}} and {{{{ b }}}} in one line."
        vars:
          a: [{values}]
          b: [{", ".join(str(i) for i in range(max(1, count * rows // 1000)))}]
        params: {{model: gpt-4o-mini, max_tokens: 20}}
        """))  # fmt: skip
    config = resolve(Experiment.from_yaml(path), RunOptions())
    ids = list(cell_ids(config))  # the walk a shard's run makes to record its grid
    grid = survey(ids, Shard(0, count))
    mine: list[array[int]] = [array("q") for _ in range(count)]
    for index, cell_id in enumerate(ids):
        mine[shard_of(cell_id, count)].append(index)
    del ids
    folders = [folder / f"shard-{index}" for index in range(count)]
    for index, out in enumerate(folders):
        out.mkdir()
        (out / "cells.bin").write_bytes(mine[index].tobytes())
    child = [sys.executable, __file__, "--shards", str(count), "--build-shards", str(path)]
    children = [
        subprocess.Popen([*child, grid.grid, str(grid.cells), *map(str, folders[job::jobs])])
        for job in range(jobs)
    ]
    for child in children:
        if child.wait():
            raise subprocess.CalledProcessError(child.returncode, child.args)
    for out in folders:
        (out / "cells.bin").unlink()
    return folders


def build_shard(path: Path, grid: str, cells: int, out: Path, count: int) -> None:
    """One shard's store as ``promptgrid run FILE --shard I/N`` on the echo provider writes
    it, through the store's own write path: its run (recording its shard and the grid) and
    lease, per cell its request, answer, result row and attempt, in commits of 5,000 rows, then
    the run released as finished.
    Only the shard's cells are rendered (``cells.bin``: their indexes, from the parent's one
    walk of the grid's ids)."""
    from promptgrid.api import Experiment
    from promptgrid.config import RunOptions, resolve
    from promptgrid.credentials import public_spec
    from promptgrid.grid import expand
    from promptgrid.runner import new_run_id
    from promptgrid.shards import GridShare, Shard
    from promptgrid.store import Answer, Owner, ResultRow, Store, leases

    index = int(out.name.rsplit("-", 1)[1])
    wanted = array("q")
    wanted.frombytes((out / "cells.bin").read_bytes())
    share = GridShare(Shard(index, count), grid, cells, len(wanted))
    experiment = Experiment.from_yaml(path)
    config = resolve(experiment, RunOptions(shard=share.shard))
    owner, run_id = Owner.me(), new_run_id()
    with Store.in_dir(out) as store:
        store.create_run(run_id, experiment.name, experiment.source,
                         public_spec(experiment.to_dict()), experiment.columns(), share.held,
                         {**config.record(), "shard": share.record()})  # fmt: skip
        leases.acquire(store, run_id, owner)  # as the run does: it owns the run, then ends it
        rows = []
        for cell in expand(config, skip=_Others(set(wanted))):
            text = f"echo: {cell.request.messages[-1]['content']}"
            answer = Answer(text, "stop", 12, 9, 0, 0, cell.request.model, None, 0.001, None, {})
            rows.append(ResultRow(
                run_id, cell.index, cell.cell_id, cell.prompt, dict(cell.vars),
                dict(cell.params), cell.repeat, cell.request.record(), "ok",
                [{"status": "ok", "latency_s": 0.001}], answer=answer, latency_s=0.001,
            ))  # fmt: skip
            if len(rows) == 5000:
                store.write(rows, owner)
                rows.clear()
        store.write(rows, owner)
        leases.release(store, run_id, owner, "finished")
        assert store.counts(run_id)["ok"] == share.held
    print(f"  shard {index}/{count}: {share.held:,} rows", flush=True)


class _Others:
    """The cells a shard's walk skips: every one not in ``wanted`` (so not rendered)."""

    def __init__(self, wanted: set[int]) -> None:
        self.wanted = wanted

    def __contains__(self, index: object) -> bool:
        return index not in self.wanted


BASELINE = """
import sys
from pathlib import Path
from promptgrid.store import Store
out, sources = Path(sys.argv[1]), sys.argv[2:]
with Store.in_dir(out) as store:
    db = store.db
    for source in sources:
        uri = Path(source, "promptgrid.sqlite").as_uri()
        db.execute("ATTACH DATABASE ? AS src", (uri + "?mode=ro",))
        with store.transaction():
            offset = db.execute("SELECT COALESCE(MAX(id), 0) FROM main.responses").fetchone()[0]
            db.execute("INSERT OR IGNORE INTO main.requests SELECT * FROM src.requests")
            columns = [r[1] for r in db.execute("PRAGMA src.table_info(responses)")]
            db.execute(f"INSERT INTO main.responses ({', '.join(columns)}) SELECT id + ?, "
                       + ", ".join(columns[1:]) + " FROM src.responses", (offset,))
            db.execute("INSERT INTO main.runs SELECT * FROM src.runs")
            db.execute("INSERT INTO main.results (run_id, idx, cell_id, prompt, vars_json, "
                       "params_json, repeat, status, response_id, attempts, latency_s, cost_usd, "
                       "cached) SELECT run_id, idx, cell_id, prompt, vars_json, params_json, "
                       "repeat, status, response_id + ?, attempts, latency_s, cost_usd, cached "
                       "FROM src.results", (offset,))
            db.execute("INSERT INTO main.attempts SELECT * FROM src.attempts")
        db.execute("DETACH DATABASE src")
"""

MERGE = """
import sys
from pathlib import Path
from promptgrid.runner import new_run_id
from promptgrid.store.merge import merge
plan, info = merge([Path(s) for s in sys.argv[2:]], Path(sys.argv[1]), run_id=new_run_id())
assert info.status == "finished" and len(plan.chosen) == len(sys.argv) - 2, info
"""


def timed(args: list[str]) -> tuple[float, float, float]:
    """Seconds the command takes, its CPU seconds, and its peak resident memory in MB."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), args)
    scale = 1e6 if sys.platform == "darwin" else 1e3  # ru_maxrss: bytes on macOS, else KiB
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / scale


def rows_in(folder: Path) -> int:
    import sqlite3

    with closing(sqlite3.connect(folder / "promptgrid.sqlite")) as db:
        return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])


def shards_in(folder: Path, options: argparse.Namespace) -> list[str]:
    """The shards built in ``folder`` (built now unless ``--keep`` has them)."""
    total = options.shards * (options.rows // 1000) * 1000
    if (folder / "built").is_file():
        return (folder / "built").read_text().split("\n")
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"building {options.shards} shards of a {total:,}-cell grid "
          f"({options.jobs} processes) ...", flush=True)  # fmt: skip
    sources = [str(s) for s in build(folder, options.shards, options.rows, options.jobs)]
    print(f"built in {time.perf_counter() - start:.0f} s; load average {load()}", flush=True)
    (folder / "built").write_text("\n".join(sources))
    return sources


def spread(values: list[float], digits: int = 2) -> str:
    """``median (min-max)``."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000, help="cells per shard (about)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="processes building the shards")
    parser.add_argument(
        "--keep",
        type=Path,
        help="build the shards in this folder, or reuse "
        "the ones built there before (same --shards and --rows)",
    )
    parser.add_argument("--build-shards", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.build_shards:  # a child of build()
        path, grid, cells, *outs = options.build_shards
        for out in outs:
            build_shard(Path(path), grid, int(cells), Path(out), options.shards)
        return
    total = options.shards * (options.rows // 1000) * 1000
    print(f"load average at the start: {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = shards_in(options.keep or folder, options)
        if not options.repeats:  # --keep DIR --repeats 0: only build
            return
        results: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "merge": []}
        for repeat in range(options.repeats):  # turn about, so the load falls on both alike
            for name, code in (("baseline", BASELINE), ("merge", MERGE)):
                out = folder / f"{name}-{repeat}"
                results[name].append(timed([sys.executable, "-c", code, str(out), *sources]))
                assert rows_in(out) == total, (name, rows_in(out))
                shutil.rmtree(out)
                print(f"  {name:<9} {results[name][-1][0]:7.2f} s  "
                      f"{results[name][-1][1]:7.2f} CPU s", flush=True)  # fmt: skip
        whole = timed([PROMPTGRID, "merge", *sources, "-o", str(folder / "cli")])
    print(f"load average at the end: {load()}")
    print(
        f"\n{total:,} rows in {options.shards} shards, {options.repeats} repeats; median (min-max)"
    )
    print(f"{'':<15}{'seconds':>22}{'CPU seconds':>22}{'peak MB':>9}")
    for name, runs in results.items():
        print(f"{name:<15}{spread([r[0] for r in runs]):>22}{spread([r[1] for r in runs]):>22}"
              f"{max(r[2] for r in runs):>9.0f}")  # fmt: skip
    print(f"{'merge + files':<15}{whole[0]:>22.2f}{whole[1]:>22.2f}{whole[2]:>9.0f}  (once)")
    merge, base = (statistics.median(r[0] for r in results[k]) for k in ("merge", "baseline"))
    cpu = statistics.median(r[1] for r in results["merge"])
    peak = max(r[2] for r in results["merge"])
    verdict = "met" if merge <= TARGET_S and peak <= TARGET_MB else "MISSED"
    print(f"\nmerge / baseline: {merge / base:.2f}x (CPU: "
          f"{cpu / statistics.median(r[1] for r in results['baseline']):.2f}x); "
          f"target <= {TARGET_S:g} s and <= {TARGET_MB:g} MB: {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
