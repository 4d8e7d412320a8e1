"""Issue 20 benchmark: memory when a server sends more than anyone should read.

    .venv/bin/python benchmarks/bench_hostile.py                  # ~1 minute
    options: --repeats N (default 3); --unbounded (also each hostile run with the limit raised
    to 4 GiB: what happened before it — needs ~6 GB of free memory)

Each scenario is a whole ``promptgrid run`` command in a child process (start-up, the store, the
export), its peak RSS from ``wait4``, against the fault server in another child
(:func:`promptgrid.testing.spawn_fault_server`), so neither the server's memory nor this
script's counts. Four cells, ``max_concurrency: 4``, the default ``limits.max_response_bytes``
(32 MiB):

* **baseline** — four ordinary answers (the same file, nothing scripted): what a run costs;
* **4 x 200 MB bodies** — every answer is a chat completion whose text is 200 MB of ``x``
  (the ``huge`` fault, ``huge_bytes`` 200,000,000), all four at once;
* **1 GB gzip bomb** — one answer is ~1 MB of gzip on the wire that inflates to 1 GB (the
  ``gzip_bomb`` fault), the three others ordinary;
* **endless stream** — streamed requests, one of which never ends (the ``endless`` fault).

Target: each hostile run peaks at <= 600 MB RSS, and its too-large answers are error rows of
type ``response_too_large`` (the others ``ok``). Each measurement is repeated and the median
printed, with the ratio to the baseline's median.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from promptgrid.testing import RemoteFaultServer, spawn_fault_server

PROMPTGRID = str(Path(sys.executable).with_name("promptgrid"))
TARGET_MB = 600.0
UNBOUNDED = 4 * 1024**3


def experiment(folder: Path, base_url: str, *, stream: bool, limit: int | None) -> Path:
    """Four cells at concurrency 4 (``limit``: limits.max_response_bytes, else the default)."""
    limits = "{max_concurrency: 4" + (f", max_response_bytes: {limit}" if limit else "") + "}"
    path = folder / f"hostile-{'s' if stream else 'w'}-{limit or 0}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: hostile
        provider: openai
        providers:
          openai: {{base_url: "{base_url}", pricing: free}}
        prompts:
          p: "Name animal {{{{ i }}}}"
        vars:
          i: [0, 1, 2, 3]
        params: {{model: gpt-4o-mini, max_tokens: 20, stream: {str(stream).lower()}}}
        limits: {limits}
        retry: {{max_attempts: 1}}
        """)
    )
    return path


def run_child(path: Path, results: Path, *, strict: bool) -> tuple[float, float, dict[str, int]]:
    """``promptgrid run``: (wall seconds, peak RSS in MB, rows by status or error type, and its
    exit code unless 0 or 3). ``strict``: any other exit code ends the benchmark."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PROMPTGRID, "run", str(path), "--no-progress", "--results-dir", str(results),
         "--format", "jsonl"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):  # 3: finished with error rows
        err = proc.stderr.read().decode().strip() if proc.stderr else ""
        if strict:
            raise SystemExit(f"promptgrid run exited {code}: {err}")
        return wall, usage.ru_maxrss / 1024, {f"exit {code}: {err[-80:]}": 1}
    db = sqlite3.connect(results / "promptgrid.sqlite")
    (run_id,) = db.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
    rows = dict(
        db.execute(
            "SELECT COALESCE(error_type, status), COUNT(*) FROM results WHERE run_id = ? "
            "GROUP BY 1",
            (run_id,),
        ).fetchall()
    )
    db.close()
    return wall, usage.ru_maxrss / 1024, rows


def scenario(
    server: RemoteFaultServer, folder: Path, name: str, faults: list[str], *, stream: bool,
    huge: int, limit: int | None, repeats: int,
) -> float:  # fmt: skip
    """Run one scenario ``repeats`` times; print and return its median peak RSS (MB)."""
    server.configure(huge_bytes=huge)
    peaks, walls = [], []
    rows: dict[str, int] = {}
    for n in range(repeats):
        server.reset()
        server.script(faults)
        results = folder / f"r-{name.replace(' ', '-')}-{limit or 0}-{n}"
        path = experiment(folder, server.base_url, stream=stream, limit=limit)
        wall, peak, rows = run_child(path, results, strict=limit is None)
        peaks.append(peak)
        walls.append(wall)
    median = statistics.median(peaks)
    shown = ", ".join(f"{p:.0f}" for p in peaks)
    wall = statistics.median(walls)
    print(f"{name:<34} peak RSS median {median:7.0f} MB ({shown}), {wall:5.1f} s, rows {rows}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unbounded", action="store_true")
    args = parser.parse_args()
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    limits = [None, UNBOUNDED] if args.unbounded else [None]
    with tempfile.TemporaryDirectory() as tmp, spawn_fault_server() as server:
        folder = Path(tmp)
        base = scenario(server, folder, "baseline: 4 ordinary answers", [], stream=False,
                        huge=0, limit=None, repeats=args.repeats)  # fmt: skip
        hostile = [
            ("4 x 200 MB bodies", ["huge"] * 4, False, 200_000_000),
            ("1 GB gzip bomb", ["gzip_bomb"], False, 1_000_000_000),
            ("endless stream", ["endless"], True, 0),
        ]
        for limit in limits:
            label = "default limit (32 MiB)" if limit is None else "limit raised to 4 GiB"
            print(f"-- {label}")
            for name, faults, stream, huge in hostile:
                if limit is not None and name == "endless stream":
                    continue  # without a limit it ends only at the timeout, having read GBs
                peak = scenario(server, folder, name, faults, stream=stream, huge=huge,
                                limit=limit, repeats=args.repeats)  # fmt: skip
                verdict = "met" if peak <= TARGET_MB else "MISSED"
                print(f"   -> {peak / base:.2f}x the baseline; target <= {TARGET_MB:.0f} MB: "
                      f"{verdict if limit is None else 'for comparison'}")  # fmt: skip


if __name__ == "__main__":
    main()
