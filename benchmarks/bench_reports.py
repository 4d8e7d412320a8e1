"""Report benchmark (issue 11): XLSX and HTML report of a 20,000-call echo run.

    .venv/bin/python benchmarks/bench_reports.py

Targets: the XLSX (four sheets) written in <= 10 s and the HTML report in <= 3 s. Baseline in
the same run: the plain parquet export of the same run. Each export runs in a child process
(`promptgrid export RUN --format ...`), so import time counts as a user sees it; the median of
three runs is printed with the file's size.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROMPTGRID = str(Path(sys.executable).with_name("promptgrid"))
TARGETS = {"parquet": None, "xlsx": 10.0, "html": 3.0}
NAMES = {"parquet": "results.parquet", "xlsx": "results.xlsx", "html": "report.html"}


def grid(folder: Path) -> Path:
    """2 prompts × 10 × 50 vars × 4 temperatures × 5 seeds = 20,000 echo calls."""
    path = folder / "grid.yaml"
    b_values = ", ".join(f"b{i}" for i in range(50))
    path.write_text(
        textwrap.dedent(f"""\
        name: bench-reports
        provider: echo
        prompts:
          short: "Name {{{{ a }}}} and {{{{ b }}}} in one line."
          long: "Write three sentences about {{{{ a }}}} and {{{{ b }}}}, then list five words."
        vars:
          a: [{", ".join(f"a{i}" for i in range(10))}]
          b: [{b_values}]
        params:
          model: gpt-4o-mini
          temperature: [0, 0.5, 1.0, 1.5]
          seed: [1, 2, 3, 4, 5]
        """)
    )
    return path


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = folder / "results"
        done = subprocess.run(
            [PROMPTGRID, "run", str(grid(folder)), "--results-dir", str(results),
             "--format", "csv", "--no-progress"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        run_id = done.stdout.split()[1].rstrip(":")
        print(f"run {run_id}: 20,000 echo calls\n")
        print(f"{'format':<8} {'median s':>9} {'runs (s)':<22} {'size':>10}  target")
        for fmt, target in TARGETS.items():
            out = folder / "out" / fmt
            args = [PROMPTGRID, "export", run_id, "--results-dir", str(results),
                    "--format", fmt, "-o", str(out)]  # fmt: skip
            runs = [timed(args) for _ in range(3)]
            median = statistics.median(runs)
            size = (out / NAMES[fmt]).stat().st_size
            verdict = "baseline" if target is None else (
                f"<= {target:.0f} s: {'met' if median <= target else 'MISSED'}"
            )  # fmt: skip
            shown = ", ".join(f"{r:.2f}" for r in runs)
            print(f"{fmt:<8} {median:>9.2f} {shown:<22} {size / 1e6:>8.1f} MB  {verdict}")


if __name__ == "__main__":
    main()
