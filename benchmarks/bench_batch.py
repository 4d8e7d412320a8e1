"""Issue 14 benchmark: a 200,000-cell grid through the Batch API.

    .venv/bin/python benchmarks/bench_batch.py              # ~2 minutes
    options: --cells N (default 200000), --repeats N (default 1)

Targets: building and uploading the grid's request files keeps the process at <= 300 MB peak
RSS and builds >= 20,000 requests per second; collecting 200,000 results into the store runs at
>= 20,000 rows per second.

The fault server runs in a child process (:func:`promptgrid.testing.spawn_fault_server`: it
holds every file in memory, and this process must stay small, since a child's peak RSS as
``wait4`` reports it includes what it shared with this process before its ``exec``);
promptgrid runs as the CLI in another child, so its peak RSS and wall time are its own:

1. **submit** — ``promptgrid run grid.yaml --batch`` against the server: validate, walk the
   grid, look each request up in the store (the cache), write the JSONL files (four of 50,000
   requests), record each chunk and its cells, upload each file and create each batch. Rate =
   cells / the command's wall time (start-up included).
2. **collect** — the server completes the four batches (not timed), then
   ``promptgrid batch collect RUN --format parquet``: download the output files, read each line
   back through the SDK's models and the online normalisers, build 200,000 rows in grid order,
   commit them, write results.parquet. Rate = cells / the command's wall time.

Baselines, measured in the same run: (1) the same request bodies written as JSONL with a plain
loop of ``json.dumps`` (no grid, no hashing, no store, no upload); (2) the same number of rows
inserted into SQLite (a results-like and a responses-like table) with bare ``executemany``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promptgrid.testing import spawn_fault_server

PYTHON = sys.executable
PROMPTGRID = str(Path(PYTHON).with_name("promptgrid"))
KEY = "sk-bench-batch"


def grid_file(folder: Path, cells: int) -> Path:
    """A grid of ``cells`` distinct requests: 2 temperatures × 10 seeds × a × b."""
    per = cells // 20
    a = 100 if per >= 100 else per
    b = max(1, per // a)
    path = folder / "grid.yaml"
    path.write_text(
        "name: bench-batch\n"
        "provider: openai\n"
        "prompts:\n"
        '  p: "Say {{ a }} and {{ b }}"\n'
        f"vars:\n  a: [{', '.join(f'a{i}' for i in range(a))}]\n"
        f"  b: [{', '.join(f'b{i}' for i in range(b))}]\n"
        "params:\n  model: gpt-4o-mini\n  max_tokens: 20\n  temperature: [0, 1]\n"
        f"  seed: [{', '.join(str(i) for i in range(10))}]\n",
        encoding="utf-8",
    )
    return path


def run_child(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run a command, reaping it with ``wait4`` for its own peak RSS."""
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed ({proc.returncode}): {text[-2000:]}")
    return wall, usage.ru_maxrss / 1024, text


def baseline_jsonl(cells: int, path: Path) -> float:
    """Seconds to write ``cells`` request lines of the same shape with plain json.dumps."""
    start = time.perf_counter()
    with path.open("w", encoding="utf-8") as out:
        for i in range(cells):
            messages = [{"role": "user", "content": f"Say a{i % 100} and b{i}"}]
            body = {"max_tokens": 20, "temperature": i % 2, "seed": i % 10,
                    "model": "gpt-4o-mini", "messages": messages}  # fmt: skip
            line = {"custom_id": f"{i:032x}", "method": "POST", "url": "/v1/chat/completions",
                    "body": body}  # fmt: skip
            out.write(json.dumps(line) + "\n")
    return time.perf_counter() - start


def baseline_sqlite(cells: int, path: Path) -> float:
    """Seconds to insert ``cells`` result rows and their answers with bare executemany."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE responses (id INTEGER PRIMARY KEY, cell_id TEXT, response TEXT, "
               "prompt_tokens INT, completion_tokens INT, request_id TEXT, cost REAL)")  # fmt: skip
    db.execute("CREATE TABLE results (run_id TEXT, idx INT, cell_id TEXT, vars TEXT, "
               "params TEXT, status TEXT, response_id INT, cost REAL, batch_id TEXT, "
               "PRIMARY KEY (run_id, idx))")  # fmt: skip
    start = time.perf_counter()
    for lo in range(0, cells, 2000):
        ids = range(lo, min(cells, lo + 2000))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO responses VALUES (?,?,?,?,?,?,?)",
            [(i + 1, f"{i:032x}", f"echo: Say a{i % 100} and b{i}", 14, 6, f"req_{i}", 1e-6)
             for i in ids],
        )  # fmt: skip
        db.executemany(
            "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?)",
            [("run", i, f"{i:032x}", f'{{"a":"a{i % 100}"}}', '{"seed":1}', "ok", i + 1, 1e-6,
              "batch") for i in ids],
        )  # fmt: skip
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    cells = args.cells
    print(f"python {sys.version.split()[0]}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    submits, collects, rss_all = [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp, spawn_fault_server() as server:
            folder = Path(tmp)
            path = grid_file(folder, cells)
            results = str(folder / "results")
            wall, rss, text = run_child(
                [PROMPTGRID, "run", str(path), "--batch", "--base-url", server.base_url,
                 "--results-dir", results, "--no-progress", "--format", "parquet"],
                folder,
            )  # fmt: skip
            submits.append(wall)
            rss_all.append(rss)
            lines = sum(int(json.loads(line)["requests"]) for line in _chunks(results))
            print(f"[{repeat + 1}] submit: {cells:,} cells, {lines:,} requests in "
                  f"{len(server.batches.ids())} batches: {wall:.2f} s, {cells / wall:,.0f} "
                  f"requests/s, peak RSS {rss:.0f} MB")  # fmt: skip
            started = time.perf_counter()
            server.batches.complete()
            print(f"    (the server answered the batches in {time.perf_counter() - started:.1f} s)")
            run_id = _run_id(results)
            wall, rss_c, text = run_child(
                [PROMPTGRID, "batch", "collect", run_id, "--results-dir", results,
                 "--no-progress", "--format", "parquet"],
                folder,
            )  # fmt: skip
            assert f"{cells:,} ok" in text, text[-500:]
            phase = float(re.search(r"rows in ([0-9.]+) s\)", text).group(1))  # type: ignore[union-attr]
            collects.append(phase)
            print(f"    collect: {cells:,} rows into the store in {phase:.2f} s, "
                  f"{cells / phase:,.0f} rows/s; the whole command (start-up, parquet "
                  f"export) {wall:.2f} s, {cells / wall:,.0f} rows/s (peak RSS "
                  f"{rss_c:.0f} MB)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = baseline_jsonl(cells, Path(tmp) / "plain.jsonl")
        insert = baseline_sqlite(cells, Path(tmp) / "plain.sqlite")
    submit, collect = statistics.median(submits), statistics.median(collects)
    print(f"baseline: plain json.dumps of {cells:,} lines {jsonl:.2f} s = {cells / jsonl:,.0f} "
          f"lines/s; bare sqlite executemany of {cells:,} rows {insert:.2f} s = "
          f"{cells / insert:,.0f} rows/s")  # fmt: skip
    print(f"submit: {cells / submit:,.0f} requests/s (target >= 20,000) = "
          f"{jsonl / submit:.2f}x the plain JSONL loop; peak RSS {max(rss_all):.0f} MB "
          "(target <= 300 MB)")  # fmt: skip
    print(f"collect: {cells / collect:,.0f} rows/s (target >= 20,000) = "
          f"{insert / collect:.2f}x bare executemany")  # fmt: skip


def _chunks(results: str) -> list[str]:
    db = sqlite3.connect(Path(results) / "promptgrid.sqlite")
    try:
        return [json.dumps({"requests": n}) for (n,) in
                db.execute("SELECT requests FROM batch_chunks")]  # fmt: skip
    finally:
        db.close()


def _run_id(results: str) -> str:
    db = sqlite3.connect(Path(results) / "promptgrid.sqlite")
    try:
        return str(db.execute("SELECT run_id FROM runs").fetchone()[0])
    finally:
        db.close()


if __name__ == "__main__":
    main()
