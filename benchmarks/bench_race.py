"""Racing the variants (issue 22): how often the race names the best, and what it spends.

    .venv/bin/python benchmarks/bench_race.py               # ~1 to 2 minutes, plus ~1 for the runs
    .venv/bin/python benchmarks/bench_race.py --races 200   # quicker, noisier

1. Simulated races, pure arithmetic through ``promptgrid.race`` (the core ``run`` calls):
   20 variants x 500 cases, pass rates 0.80, 0.70 and 18 evenly spread from 0.20 to 0.65
   (a fresh pass/fail table per race, seed = race number; the 0.80 variant at a random place
   in the list), default settings (confidence 0.95, min_cases 20, keep 1). Targets: the race
   names the 0.80 variant in >= 95 % of races, uses <= 40 % of the grid's calls on average,
   and 1,000 races take <= 60 s. Baseline, in the same run: the full grid (every variant on
   every case, the highest mean named).
2. Real runs: per seed of data (3), a raced ``promptgrid run`` of such a grid on the echo
   provider, in a child process (echo's answer repeats the prompt, which ends in the variant's
   yes/no column of a cases file; the score is ``contains: yes``), then the full grid
   (``--no-race``, the baseline) and its ``promptgrid.replay``, which must reach the live
   race's decisions. Target: the race names the 0.80 variant and sends <= 40 % of the calls.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
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
    """An experiment whose prompt pNN passes (echo repeats a prompt ending in yes) at that
    variant's rate; the case id and the variant's name make every prompt unique, so nothing
    is answered from the cache or de-duplicated."""
    rng = np.random.default_rng(1000 + seed)
    passes = rng.random((CASES, VARIANTS)) < RATES[None, :]
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", *(f"c{j:02d}" for j in range(VARIANTS))])
        out.writerows([[i, *("yes" if x else "no" for x in row)] for i, row in enumerate(passes)])
    prompt = '  p{0:02d}: "p{0:02d} on case {{{{ id }}}}: {{{{ c{0:02d} }}}}"\n'
    prompts = "".join(prompt.format(j) for j in range(VARIANTS))
    path = folder / "race.yaml"
    path.write_text(
        f"name: race{seed}\nprovider: echo\nprompts:\n{prompts}cases_file: cases.csv\n"
        "params: {model: m}\nscores:\n  correct: {contains: 'yes'}\n"
        "race: {score: correct}\n",
        encoding="utf-8",
    )
    return path


def cli_run(path: Path, results: Path, *flags: str) -> float:
    """A real ``promptgrid run`` in a child process; returns its wall time."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from promptgrid.cli import main; main()", "run", str(path),
         "--results-dir", str(results), "--no-progress", "--format", "parquet", *flags],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def runs() -> list[bool]:
    """Per seed of data: the race run for real, the full grid (baseline), and the full grid
    replayed as a race (which must reach the live race's decisions). Returns whether each
    race met the target (the 0.80 variant named, at most 40 % of the calls sent)."""
    print("\n2. real `promptgrid run`s on the echo provider (the full grid: 10,000 calls)")
    met = []
    for seed in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = write_grid(folder, seed)
            raced_s = cli_run(path, folder / "raced")
            race = promptgrid.standings(results_dir=folder / "raced")
            raced = promptgrid.load(results_dir=folder / "raced")
            full_s = cli_run(path, folder / "full", "--no-race")
            full = promptgrid.load(results_dir=folder / "full")
            start = time.perf_counter()
            replayed = promptgrid.replay(full, results_dir=folder / "full")
            replay_s = time.perf_counter() - start
        assert race is not None
        sent = int((~raced["cached"].astype(bool)).sum())  # answered by the provider
        share = sent / len(full)
        same = [(d.variant, d.round) for d in race.record.drops] == [
            (e.variant, e.round) for e in replayed.outcome.eliminations
        ]
        met.append(race.winner == "p00" and share <= 0.40)
        print(f"  seed {seed}: race winner {race.winner} (0.80 variant: p00; full grid's best "
              f"{replayed.grid_best}), {race.record.state.rounds} rounds, sent {sent:,} of "
              f"{len(full):,} calls ({share:.1%}), tied: {', '.join(race.tied) or 'none'}; "
              f"wall time {raced_s:.1f} s vs full grid {full_s:.1f} s ({raced_s / full_s:.2f}x); "
              f"replay of the full grid {replay_s:.2f} s, same decisions: {same}")  # fmt: skip
    return met


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
    met = runs()
    print(f"  target (names p00, sends <= 40 %): met in {sum(met)} of {len(met)} runs")


if __name__ == "__main__":
    main()
