"""Scoring benchmark (issue 20): rows scored per second by ``promptgrid.score`` on a stored run.

    .venv/bin/python benchmarks/bench_scoring.py [--rows 4000] [--repeats 3]

An echo run of ``--rows`` answers is made once (not timed); then each set of scores is computed
again with ``promptgrid.score(run_id, scores)`` — read, score, write, and rewrite the run's
parquet file — the median of ``--repeats`` runs. Sets: ``checks`` (equals, contains, a regex,
is_json: the deterministic kinds) and ``python`` (one cheap ``python:`` scorer).

Baseline in the same run: the same scores computed in a bare loop in this process over the same
answers (``checks.evaluate`` and a direct call of the function): no store, no files, no worker.
With the scoring worker (issue 20) it also times the worker alone on the same answers, once
started: its start-up and its cost per job apart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import promptgrid
from promptgrid.scoring.checks import evaluate

SCORERS = """\
def cheap(answer, row):
    return len(answer) + row["repeat"]
"""
SETS: dict[str, dict[str, Any]] = {
    "checks": {
        "same": {"equals": "echo: {{ word }}"},
        "has": {"contains": "{{ word }}"},
        "shape": {"regex": r"^echo: w\d+$"},
        "json": {"is_json": True},
    },
    "python": {"cheap": {"python": "bench_scorers:cheap"}},
}


def make_run(folder: Path, rows: int) -> str:
    (folder / "bench_scorers.py").write_text(SCORERS)
    experiment = {
        "name": "bench-scoring",
        "provider": "echo",
        "prompts": {"p": "{{ word }}"},
        "vars": {"word": [f"w{i}" for i in range(rows)]},
        "params": {"model": "m"},
    }
    exp = promptgrid.Experiment.from_dict(experiment, base_dir=folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = promptgrid.run(exp, results_dir=folder / "r", progress=False, formats="parquet")
    return str(df["run_id"][0])


def timed_score(folder: Path, run_id: str, scores: dict[str, Any]) -> float:
    start = time.perf_counter()
    df = promptgrid.score(run_id, scores, results_dir=folder / "r", progress=False)
    elapsed = time.perf_counter() - start
    assert df["score_errors"].isna().all(), df["score_errors"].dropna().head()
    return elapsed


def bare_loop(folder: Path, run_id: str, scores: dict[str, Any]) -> float:
    """The same scores in this process, straight over the answers."""
    df = promptgrid.load(run_id, results_dir=folder / "r")
    exp = promptgrid.Experiment.from_dict(
        {"prompts": {"p": "{{ word }}"}, "vars": {"word": ["w0"]}, "params": {"model": "m"},
         "provider": "echo", "scores": scores},
        base_dir=folder,
    )  # fmt: skip
    defs = exp.scores
    rows = [(a, {"word": w, "model": "m"}) for a, w in zip(df["response"], df["word"], strict=True)]
    start = time.perf_counter()
    for answer, values in rows:
        for score in defs:
            if score.function is not None:
                row = {"prompt": "p", "vars": {"word": values["word"]}, "params": {"model": "m"},
                       "repeat": 0, "messages": [], "cell_id": "x"}  # fmt: skip
                score.function(answer, row)
            else:
                evaluate(score, answer, values)
    return time.perf_counter() - start


def worker_alone(folder: Path, run_id: str, scores: dict[str, Any]) -> tuple[float, float]:
    """(start-up, scoring) seconds of the scoring worker on the same jobs."""
    try:
        from promptgrid.scoring.worker import ScoringWorker
    except ImportError:  # before issue 20: scores ran in the main process
        return float("nan"), float("nan")
    df = promptgrid.load(run_id, results_dir=folder / "r")
    exp = promptgrid.Experiment.from_dict(
        {"prompts": {"p": "{{ word }}"}, "vars": {"word": ["w0"]}, "params": {"model": "m"},
         "provider": "echo", "scores": scores},
        base_dir=folder,
    )  # fmt: skip
    rows = [
        (a, {"word": w, "model": "m"}, {"prompt": "p", "vars": {"word": w},
         "params": {"model": "m"}, "repeat": 0, "messages": [], "cell_id": "x"})
        for a, w in zip(df["response"], df["word"], strict=True)
    ]  # fmt: skip
    jobs = [(i, s.name) for i in range(len(rows)) for s in exp.scores]

    async def go() -> tuple[float, float]:
        worker = ScoringWorker(exp.scores, folder)
        try:
            start = time.perf_counter()
            await worker.score(rows[:1], jobs[:1])
            started = time.perf_counter() - start
            start = time.perf_counter()
            results = await worker.score(rows, jobs)
            assert all(error is None for _, error in results)
            return started, time.perf_counter() - start
        finally:
            await worker.aclose()

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sys.path.insert(0, str(folder))
        run_id = make_run(folder, args.rows)
        print(f"{args.rows:,} rows; median of {args.repeats}")
        for name, scores in SETS.items():
            score_s = statistics.median(
                timed_score(folder, run_id, scores) for _ in range(args.repeats)
            )
            bare_s = statistics.median(
                bare_loop(folder, run_id, scores) for _ in range(args.repeats)
            )
            runs = [worker_alone(folder, run_id, scores) for _ in range(args.repeats)]
            boot_s = statistics.median(r[0] for r in runs)
            work_s = statistics.median(r[1] for r in runs)
            print(
                f"  {name:<7} promptgrid.score: {score_s:6.2f} s = {args.rows / score_s:8,.0f} "
                f"rows/s; bare loop: {bare_s:6.3f} s = {args.rows / bare_s:10,.0f} rows/s; "
                f"worker alone: start {boot_s:5.2f} s, then {work_s:6.3f} s = "
                f"{args.rows / work_s:8,.0f} rows/s ({work_s / bare_s:.2f}x the bare loop)"
            )


if __name__ == "__main__":
    main()
