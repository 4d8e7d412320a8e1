"""The plan: counts for huge grids, and the cached count against a store.

    .venv/bin/python benchmarks/bench_plan.py                # ~1 minute

Grids (echo provider, 2 prompts x 1,000 cases x 10 tones x 5 temperatures x R repeats):

* 1,000,000 cells (R = 10): ``promptgrid.plan`` including the cached count, against a store
  that holds answers to the first 10,000 cells of the grid (run first, not timed). Target
  (issue 10): <= 5 s.
* 10,000,000 cells (R = 100): the plan's counts, where the cached count is skipped (above
  ``promptgrid.planning.EXACT_LIMIT`` cells) and the plan says so. Target: <= 1 s.

Baseline, measured in the same run: ``promptgrid validate`` of the same file (the file is read,
checked and its templates rendered once; nothing is walked), in process.
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import promptgrid
from promptgrid.api import experiment_of


def write(folder: Path, repeats: int) -> Path:
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["question"])
        out.writerows([f"Question number {i}: what is {i} plus {i}?"] for i in range(1000))
    path = folder / f"grid{repeats}.yaml"
    path.write_text(
        "provider: echo\n"
        "prompts:\n"
        '  plain: "{{ question }}"\n'
        '  toned: "Answer in a {{ tone }} tone: {{ question }}"\n'
        "cases_file: cases.csv\n"
        "vars: {tone: [t0, t1, t2, t3, t4, t5, t6, t7, t8, t9]}\n"
        "params: {model: m, temperature: [0.0, 0.25, 0.5, 0.75, 1.0], max_tokens: 50}\n"
        f"repeats: {repeats}\n",
        encoding="utf-8",
    )
    return path


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    print(f"  {label:<52} {seconds:7.2f} s")
    return seconds, value


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = folder / "results"
        small = folder / "small.yaml"
        small.write_text(write(folder, 10).read_text().replace("repeats: 10", "repeats: 1")
                         .replace("cases_file: cases.csv", "cases_file: first.csv"))  # fmt: skip
        with (folder / "first.csv").open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["question"])
            out.writerows([f"Question number {i}: what is {i} plus {i}?"] for i in range(100))
        # 2 x 100 x 10 x 5 = 10,000 answers in the store, all cells of the big grid too.
        promptgrid.run(small, results_dir=results, progress=False, formats="csv")
        print("plan of a 1,000,000-cell grid (store holds 10,000 of its answers)")
        path = write(folder, 10)
        base, _ = timed("baseline: validate (read, check, render once)",
                        lambda: experiment_of(path))  # fmt: skip
        secs, plan = timed("promptgrid.plan, cached count included",
                           lambda: promptgrid.plan(path, results_dir=results))  # fmt: skip
        print(f"    total {plan.total:,}, cached {plan.cached:,}, duplicates {plan.duplicates:,}")
        verdict = "met" if secs <= 5 else "MISSED"
        print(f"    target <= 5 s: {verdict} ({secs / base:.1f}x validate)")
        print("plan of a 10,000,000-cell grid")
        path = write(folder, 100)
        base, _ = timed("baseline: validate", lambda: experiment_of(path))
        secs, plan = timed("promptgrid.plan, counts (cached count skipped)",
                           lambda: promptgrid.plan(path, results_dir=results))  # fmt: skip
        print(f"    total {plan.total:,}, cached {plan.cached}, prompt tokens "
              f"{plan.prompt_tokens:,} (from a sample of {plan.sampled} prompts)")  # fmt: skip
        verdict = "met" if secs <= 1 else "MISSED"
        print(f"    target <= 1 s: {verdict} ({secs / base:.1f}x validate)")


if __name__ == "__main__":
    main()
