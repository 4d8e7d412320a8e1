"""Racing the variants (issue 22): how often the race names the best, and what it spends.

    .venv/bin/python benchmarks/bench_race.py               # ~1 to 2 minutes
    .venv/bin/python benchmarks/bench_race.py --races 200   # quicker, noisier

1. Simulated races, pure arithmetic through ``promptgrid.race`` (the core the engine will call):
   20 variants x 500 cases, pass rates 0.80, 0.70 and 18 evenly spread from 0.20 to 0.65
   (a fresh pass/fail table per race, seed = race number; the 0.80 variant at a random place
   in the list), default settings (confidence 0.95, min_cases 20, keep 1). Targets: the race
   names the 0.80 variant in >= 95 % of races, uses <= 40 % of the grid's calls on average,
   and 1,000 races take <= 60 s. Baseline, in the same run: the full grid (every variant on
   every case, the highest mean named).
2. Replay of stored runs: a real ``promptgrid run`` of such a grid on the echo provider (the
   answer says yes or no as the variant's column in a cases file says; 10,000 calls; 3 seeds
   of data), then ``promptgrid.replay`` of it: the winner, the calls the race would have used,
   and how long the replay takes.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import promptgrid
from promptgrid.race import Race, Round, Rules, drive

VARIANTS, CASES = 20, 500
RATES = np.array([0.80, 0.70, *np.linspace(0.20, 0.65, 18)])


def simulate(races: int) -> dict[str, np.ndarray]:
    """Race and full grid over ``races`` tables: who each named, and the race's calls share."""
    named, grid_named, share, best_dropped, exhausted = [], [], [], 0, 0
    for seed in range(races):
        rng = np.random.default_rng(seed)
        order = rng.permutation(VARIANTS)  # variant order[i] has rate RATES[i]
        names = [f"p{j:02d}" for j in range(VARIANTS)]
        best = names[order[0]]
        data = np.empty((VARIANTS, CASES))
        data[order] = (rng.random((VARIANTS, CASES)) < RATES[:, None]).astype(float)

        def scores(r: Round, data: np.ndarray = data) -> dict[str, list[float | None]]:
            return {v: data[int(v[1:]), list(r.blocks)].tolist() for v in r.variants}

        outcome = drive(Race.start(names, CASES, Rules(seed=seed)), scores).outcome()
        named.append(outcome.winner == best)
        share.append(outcome.runs / outcome.grid_runs)
        best_dropped += any(e.variant == best for e in outcome.eliminations)
        exhausted += outcome.reason == "exhausted"
        grid_named.append(names[int(np.argmax(data.mean(axis=1)))] == best)
    return {
        "named": np.array(named), "grid_named": np.array(grid_named), "share": np.array(share),
        "best_dropped": np.array(best_dropped), "exhausted": np.array(exhausted),
    }  # fmt: skip


def write_grid(folder: Path, seed: int) -> Path:
    """An experiment whose prompt pNN answers yes (passes) at that variant's rate."""
    rng = np.random.default_rng(1000 + seed)
    passes = rng.random((CASES, VARIANTS)) < RATES[None, :]
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([f"c{j:02d}" for j in range(VARIANTS)])
        out.writerows([["yes" if x else "no" for x in row] for row in passes])
    prompts = "".join(f'  p{j:02d}: "{{{{ c{j:02d} }}}}"\n' for j in range(VARIANTS))
    path = folder / "race.yaml"
    path.write_text(
        f"name: race{seed}\nprovider: echo\nprompts:\n{prompts}cases_file: cases.csv\n"
        "params: {model: m}\nscores:\n  correct: {contains: 'yes'}\n"
        "race: {score: correct}\n",
        encoding="utf-8",
    )
    return path


def replays() -> None:
    print("\n2. replay of stored full-grid runs (echo provider, 10,000 calls each)")
    for seed in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = write_grid(folder, seed)
            start = time.perf_counter()
            df = promptgrid.run(path, results_dir=folder / "results", progress=False,
                                formats="parquet")  # fmt: skip
            ran = time.perf_counter() - start
            start = time.perf_counter()
            result = promptgrid.replay(df, results_dir=folder / "results")
            took = time.perf_counter() - start
            share = result.calls / result.grid_calls
            print(f"  seed {seed}: run {ran:5.1f} s; replay {took:5.2f} s: winner "
                  f"{result.winner} (full grid's best {result.grid_best}), "
                  f"{result.calls:,} of {result.grid_calls:,} calls ({share:.1%}), "
                  f"{result.outcome.rounds} rounds")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=1000)
    args = parser.parse_args()
    print(f"1. {args.races:,} simulated races: {VARIANTS} variants x {CASES} cases")
    start, cpu = time.perf_counter(), time.process_time()
    found = simulate(args.races)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    share = found["share"]
    p10, median, p90 = np.quantile(share, [0.1, 0.5, 0.9])
    print(f"  race names the 0.80 variant:  {found['named'].mean():7.1%}   (target >= 95 %)")
    print(f"  full grid (baseline) names it: {found['grid_named'].mean():7.1%}")
    print(f"  0.80 variant dropped:         {int(found['best_dropped']):5d} of {args.races:,} "
          "races (the guarantee: <= 5 %)")  # fmt: skip
    print(f"  ended with blocks exhausted:  {int(found['exhausted']):5d} (the rest: one left)")
    print(f"  calls / full grid:  mean {share.mean():.1%} (target <= 40 %), median "
          f"{median:.1%}, p10 {p10:.1%}, p90 {p90:.1%}, min {share.min():.1%}, "
          f"max {share.max():.1%}")  # fmt: skip
    print(f"  time: {seconds:.1f} s for {args.races:,} races ({seconds / args.races * 1000:.1f}"
          f" ms a race; target <= 60 s for 1,000), of it {cpu:.1f} s of CPU; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    replays()


if __name__ == "__main__":
    main()
