"""Merge benchmark (issue 25): 10 shards of 100,000 rows each joined into one run.

    .venv/bin/python benchmarks/bench_merge.py [--shards 10] [--rounds 3]

Target: the merge in <= 10 s at <= 300 MB peak RSS. The sources are the 10 shards of a
1,000,000-cell echo grid (1,000 × 1,000 vars), written through the store's own write path as a
shard's run writes them: per cell its request, answer, result row and attempt; each shard's run
records its shard and the grid (built once, not timed).

Timed, each in a child process (peak memory is its largest resident set, from ``wait4``), the
median of ``--rounds`` rounds, each into a fresh output folder:

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
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

PROMPTGRID = str(Path(sys.executable).with_name("promptgrid"))
TARGET_S, TARGET_MB = 10.0, 300.0


def build(folder: Path, count: int) -> list[Path]:
    """The shards' results folders of a 1,000,000-cell echo grid."""
    from promptgrid.api import Experiment
    from promptgrid.config import RunOptions, resolve
    from promptgrid.credentials import public_spec
    from promptgrid.grid import cell_ids, expand
    from promptgrid.runner import new_run_id
    from promptgrid.shards import GridShare, Shard, shard_of, survey
    from promptgrid.store import Answer, Owner, ResultRow, Store

    values = ", ".join(str(i) for i in range(1000))
    path = folder / "grid.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: bench-merge
        provider: echo
        prompts:
          p: "Name {{{{ a }}}} and {{{{ b }}}} in one line."
        vars:
          a: [{values}]
          b: [{values}]
        params: {{model: gpt-4o-mini, max_tokens: 20}}
        """))  # fmt: skip
    experiment = Experiment.from_yaml(path)
    config = resolve(experiment, RunOptions())
    ids = list(cell_ids(config))
    held = Counter(shard_of(cell_id, count) for cell_id in ids)
    grid = survey(ids, Shard(0, count))
    del ids
    owner = Owner.me()
    folders = [folder / f"shard-{index}" for index in range(count)]
    stores = [Store.in_dir(out) for out in folders]
    runs, pending = [], [[] for _ in stores]
    for index, store in enumerate(stores):
        share = GridShare(Shard(index, count), grid.grid, grid.cells, held[index])
        runs.append(new_run_id())
        store.create_run(runs[-1], experiment.name, str(path), public_spec(experiment.to_dict()),
                         experiment.columns(), share.held,
                         {**config.record(), "shard": share.record()})  # fmt: skip
    for cell in expand(config):  # one walk, each cell to its shard's store
        index = shard_of(cell.cell_id, count)
        text = f"echo: {cell.request.messages[-1]['content']}"
        answer = Answer(text, "stop", 12, 9, 0, 0, cell.request.model, None, 0.001, None, {})
        rows = pending[index]
        rows.append(ResultRow(
            runs[index], cell.index, cell.cell_id, cell.prompt, dict(cell.vars),
            dict(cell.params), cell.repeat, cell.request.record(), "ok",
            [{"status": "ok", "latency_s": 0.001}], answer=answer, latency_s=0.001,
        ))  # fmt: skip
        if len(rows) == 5000:
            stores[index].write(rows, owner)
            rows.clear()
    for index, store in enumerate(stores):
        store.write(pending[index], owner)
        store.set_status(runs[index], "finished")
        store.close()
        print(f"  shard {index}/{count}: {held[index]:,} rows", flush=True)
    return folders


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

    with sqlite3.connect(folder / "promptgrid.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        print(f"building {options.shards} shards of a 1,000,000-cell grid ...", flush=True)
        sources = [str(s) for s in build(folder, options.shards)]
        print(f"built in {time.perf_counter() - start:.0f} s", flush=True)
        results: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "merge": []}
        for round_ in range(options.rounds):
            for name, code in (("baseline", BASELINE), ("merge", MERGE)):
                out = folder / f"{name}-{round_}"
                results[name].append(timed([sys.executable, "-c", code, str(out), *sources]))
                assert rows_in(out) == 1_000_000, (name, rows_in(out))
        whole = timed([PROMPTGRID, "merge", *sources, "-o", str(folder / "cli")])
    print(f"\n{'':<16}{'seconds':>10}{'(best)':>10}{'CPU s':>8}{'peak MB':>9}")
    medians = {}
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        medians[name] = seconds
        cpu = statistics.median(r[1] for r in runs)
        print(f"{name:<16}{seconds:>10.2f}{min(r[0] for r in runs):>10.2f}{cpu:>8.2f}"
              f"{max(r[2] for r in runs):>9.0f}")  # fmt: skip
    print(f"{'merge + files':<16}{whole[0]:>10.2f}{'':>10}{whole[1]:>8.2f}{whole[2]:>9.0f}")
    peak = max(r[2] for r in results["merge"])
    ratio = medians["merge"] / medians["baseline"]
    verdict = "met" if medians["merge"] <= TARGET_S and peak <= TARGET_MB else "MISSED"
    print(f"\nmerge / baseline: {ratio:.2f}x; target <= {TARGET_S:g} s and <= {TARGET_MB:g} MB: "
          f"{verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
