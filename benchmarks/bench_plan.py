"""The plan of a million distinct cells, cached count included, and the counts of ten million.

    .venv/bin/python benchmarks/bench_plan.py                    # ~3 minutes, 3 repeats
    .venv/bin/python benchmarks/bench_plan.py --repeats 5 --base 369f905

Grids (echo provider; every cell a distinct request, no repeats, no parameter lists):

* 1,000,000 cells: 2 prompts x 1,000 cases x 500 values of one var. ``promptgrid.plan``,
  including the cached count, against a store that holds answers to 10,000 of its cells (the
  first 10 cases' cells, run first, not timed). Target (issue 24): <= 5 s.
* 10,000,000 cells: the same x 10 temperatures. The plan's counts (the cached count is
  skipped above ``promptgrid.planning.EXACT_LIMIT`` cells, and the plan says so). Target:
  <= 1 s.

Baseline, measured in the same run: the same calls made by the code of ``--base`` (a commit,
default the main tip this work started from), extracted with ``git archive`` into a temporary
folder. Each measurement runs in its own child process (``PYTHONPATH`` picking the code), timing
only the ``plan`` call (the API imported before: start-up is timed apart); the two codes
alternate, repeat after repeat, so the machine's load falls on both alike. Median and spread
(min-max) are printed, and the load average.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from checkout import source_at

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

CHILD = """
import sys, time
import promptgrid
make_plan = promptgrid.plan  # imports the API: start-up is issue 24 item 1, timed apart
start = time.perf_counter()
plan = make_plan(sys.argv[1], results_dir=sys.argv[2])
print(time.perf_counter() - start, plan.total, plan.cached, plan.duplicates)
"""


def write(folder: Path, name: str, cases: int, temperatures: int) -> Path:
    cases_file = folder / f"{name}.csv"
    with cases_file.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["question"])
        out.writerows([f"Question number {i}: what is {i} plus {i}?"] for i in range(cases))
    temps = ", ".join(f"{t / 10:g}" for t in range(temperatures))
    path = folder / f"{name}.yaml"
    path.write_text(
        "provider: echo\n"
        "prompts:\n"
        '  plain: "{{ question }} ({{ tone }})"\n'
        '  toned: "Answer in a {{ tone }} tone: {{ question }}"\n'
        f"cases_file: {cases_file.name}\n"
        f"vars: {{tone: [{', '.join(f't{i}' for i in range(500))}]}}\n"
        f"params: {{model: m, temperature: [{temps}], max_tokens: 50}}\n",
        encoding="utf-8",
    )
    return path


def measure(src: Path, path: Path, results: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(results)],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return float(out[0]), f"total {int(out[1]):,}, cached {out[2]}, duplicates {out[3]}"


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"median {statistics.median(values):6.2f} s (min {low:.2f}, max {high:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", default="369f905", help="the baseline commit")
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        codes = {"this code": SRC, f"base {args.base}": source_at(args.base, folder / "base")}
        results = folder / "results"
        small = write(folder, "small", 10, 1)  # 2 x 10 x 500 = 10,000 cells of the big grid
        subprocess.run(
            [sys.executable, "-c", "import sys, promptgrid; promptgrid.run(sys.argv[1], "
             "results_dir=sys.argv[2], progress=False, formats='csv')", str(small), str(results)],
            env={**os.environ, "PYTHONPATH": str(SRC)}, check=True,
        )  # fmt: skip
        grids = [
            ("1,000,000 distinct cells, cached count against 10,000 stored", 5.0,
             write(folder, "million", 1000, 1)),
            ("10,000,000 cells, counts (cached count skipped)", 1.0,
             write(folder, "ten_million", 1000, 10)),
        ]  # fmt: skip
        for title, target, path in grids:
            print(f"\nplan of {title}")
            times: dict[str, list[float]] = {name: [] for name in codes}
            for _ in range(args.repeats):
                for name, src in codes.items():
                    seconds, what = measure(src, path, results)
                    times[name].append(seconds)
                    print(f"  {name:<16} {seconds:6.2f} s   {what}")
            for name, values in times.items():
                print(f"  {name:<16} {spread(values)}")
            mine, theirs = (statistics.median(v) for v in times.values())
            verdict = "met" if mine <= target else "MISSED"
            print(f"  ratio this / base: {mine / theirs:.2f}x; target <= {target:g} s: {verdict}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
