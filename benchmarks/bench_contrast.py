"""contrast (and decide) on a million rows.

    .venv/bin/python benchmarks/bench_contrast.py            # ~1-2 minutes

Tables shaped like ``load()``'s (run_id, cell_id, prompt, two case columns, model,
temperature, repeat, choice, response, status, cost_usd, cached, a pass/fail score with 2 %
error rows), built in memory:

* **single**: 2 prompts x 500,000 cases, one sample a cell: 500,000 pairs, McNemar;
* **repeats**: 2 prompts x 100,000 cases x 5 repeats: cell means, the signed-rank test,
  pass@k and the agreement on the score and on the answer's text;
* **decide**: ``promptgrid.decide`` on the single table (prompt and temperature vary: two
  factors, every level against the best).

Target (issue 21): ``contrast`` on 1,000,000 rows <= 5 s. Baseline, measured in the same run on
the same table: a plain pandas groupby — the pass rate per prompt (``df.groupby("prompt")
[score].mean()``) and, closer to the work pairing needs, the mean per cell
(``df.groupby(["prompt", "question", "temperature"])[score].mean()``). Each timing is the
median of three runs (best in brackets).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

import promptgrid

ROWS = 1_000_000


def table(cases: int, repeats: int, seed: int = 0) -> pd.DataFrame:
    """2 prompts x ``cases`` x ``repeats`` rows; the temperature alternates with the case, so
    it is an input that varies without doubling the rows."""
    rng = np.random.default_rng(seed)
    n = 2 * cases * repeats
    prompt = np.repeat(np.array(["closed_book", "open_book"]), cases * repeats)
    case = np.tile(np.repeat(np.arange(cases), repeats), 2)
    repeat = np.tile(np.arange(repeats), 2 * cases)
    passed = rng.random(n) < np.where(prompt == "open_book", 0.75, 0.70)
    score = pd.array(passed, dtype="boolean")
    score[rng.random(n) < 0.02] = pd.NA  # error rows have no score
    question = pd.Series(case).map("q{}".format)
    return pd.DataFrame(
        {
            "run_id": "20261207-120000.000-abcd",
            "cell_id": pd.Series(np.arange(n)).map("{:016x}".format),
            "prompt": prompt,
            "question": question,
            "expected": "E" + question,
            "model": "gpt-4o-mini",
            "temperature": np.where(case % 2 == 0, 0.0, 0.7),
            "repeat": pd.array(repeat, dtype="Int64"),
            "choice": pd.array(np.zeros(n, dtype=int), dtype="Int64"),
            "response": np.where(passed, "Paris", "Lyon"),
            "status": "ok",
            "cost_usd": 0.00012,
            "cached": False,
            "score_correct": score,
        }
    )


def timed(label: str, fn: Callable[[], Any], repeat: int = 3) -> float:
    """Wall-clock seconds (median of ``repeat``), printed with the best and the CPU time: on
    a shared machine the CPU time moves less than the wall clock."""
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    median = statistics.median(times)
    print(f"  {label:<58} {median:6.2f} s  (best {min(times):.2f}, "
          f"CPU {statistics.median(cpu):.2f})")  # fmt: skip
    return median


def main() -> None:
    shapes = {"single": table(ROWS // 2, 1), "repeats": table(ROWS // 10, 5)}
    for name, df in shapes.items():
        print(f"{name}: {len(df):,} rows")
        by_prompt = timed(
            "baseline: groupby(prompt).mean()",
            lambda df=df: df.groupby("prompt")["score_correct"].mean(),
        )
        by_cell = timed(
            "baseline: groupby(prompt, question, temperature).mean()",
            lambda df=df: df.groupby(["prompt", "question", "temperature"])["score_correct"].mean(),
        )
        took = timed(
            "promptgrid.contrast(df, score='correct')",
            lambda df=df: promptgrid.contrast(df, score="correct"),
        )
        verdict = "met" if took <= 5 else "MISSED"
        print(f"  -> {took / by_prompt:.1f}x the per-prompt groupby, {took / by_cell:.1f}x the "
              f"per-cell groupby; target <= 5 s: {verdict}")  # fmt: skip
        print(promptgrid.contrast(df, score="correct").pairs[["pairs", "informative", "p_value"]])
    df = shapes["single"]
    timed("promptgrid.decide(df) (single)", lambda: promptgrid.decide(df))


if __name__ == "__main__":
    main()
