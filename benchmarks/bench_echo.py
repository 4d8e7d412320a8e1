"""Echo throughput end to end: ``promptgrid run`` of a 100,000-cell echo grid (issue 24 item 3).

    .venv/bin/python benchmarks/bench_echo.py                    # ~3 minutes on an idle box
    .venv/bin/python benchmarks/bench_echo.py --repeats 5 --cells 20000 --base 369f905

The whole command in a child process (start-up, validation, a new store, every guarantee —
leases, claims, exact de-duplication, the one commit path — and the parquet + CSV export), on the
grid of ``bench_core.py`` (one prompt, two var axes, two parameter axes, repeats). Target:
>= 7,000 cells/s.

Baseline, measured in the same run: the same command run by the code of ``--base`` (a commit,
default the main tip this work started from), extracted with ``git archive``; the two codes
alternate, repeat after repeat, so the machine's load falls on both alike. Median and spread
(min-max) of each, their ratio, and the load average are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_core import grid_file
from checkout import source_at

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
CLI = "import sys; from promptgrid.cli import main; sys.exit(main())"


def once(src: Path, path: Path, results: Path) -> float:
    shutil.rmtree(results, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", CLI, "run", str(path), "--no-progress", "--results-dir",
         str(results)],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", type=int, default=100_000, help="a multiple of 5,000")
    parser.add_argument("--base", default="369f905", help="the baseline commit")
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        codes = {"this code": SRC, f"base {args.base}": source_at(args.base, folder / "base")}
        path = grid_file(folder, args.cells // 5_000)
        print(f"promptgrid run, {args.cells:,}-cell echo grid, whole command")
        times: dict[str, list[float]] = {name: [] for name in codes}
        for _ in range(args.repeats):
            for name, src in codes.items():
                seconds = once(src, path, folder / "results")
                times[name].append(seconds)
                print(f"  {name:<16} {seconds:6.2f} s = {args.cells / seconds:6,.0f} cells/s")
        for name, values in times.items():
            rates = sorted(args.cells / v for v in values)
            print(f"  {name:<16} median {args.cells / statistics.median(values):6,.0f} cells/s "
                  f"(min {rates[0]:,.0f}, max {rates[-1]:,.0f})")  # fmt: skip
        mine, theirs = (statistics.median(v) for v in times.values())
        rate = args.cells / mine
        verdict = "met" if rate >= 7_000 else "MISSED"
        print(f"  speed this / base: {theirs / mine:.2f}x; target >= 7,000 cells/s: {verdict}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
