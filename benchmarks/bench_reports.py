"""Report benchmark (issue 11): XLSX and HTML report of a 20,000-call echo run.

    .venv/bin/python benchmarks/bench_reports.py [--reference OTHER_CHECKOUT/src]

Targets: the XLSX (four sheets) written in <= 10 s and the HTML report in <= 3 s. Baseline in
the same run: the plain parquet export of the same run. Each export runs in a child process
(`promptgrid export RUN --format ...`), so import time counts as a user sees it; the median of
three rounds is printed with the child's CPU time (user + system: what a busy machine inflates
least), the file's size and the child's peak memory (its largest resident set).
``--reference`` also exports the XLSX with the promptgrid of another checkout (its ``src`` put
first on PYTHONPATH), in the same rounds, turn about with this one, so a busy machine slows
both alike.
"""

from __future__ import annotations

import argparse
import os
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


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Seconds the command takes, its CPU seconds, and its peak resident memory in MB."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, args)
    scale = 1e6 if sys.platform == "darwin" else 1e3  # ru_maxrss: bytes on macOS, else KiB
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu, usage.ru_maxrss / scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, help="another checkout's src folder")
    reference = parser.parse_args().reference
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
        rows: list[tuple[str, str, dict[str, str] | None]] = [(fmt, fmt, None) for fmt in TARGETS]
        if reference is not None:
            env = {**os.environ, "PYTHONPATH": str(reference.resolve())}
            rows.insert(2, ("xlsx ref", "xlsx", env))
        measured: dict[str, list[tuple[float, float, float]]] = {label: [] for label, *_ in rows}
        for _ in range(3):  # rounds: each row once a round
            for label, fmt, env in rows:
                out = folder / "out" / label
                args = [PROMPTGRID, "export", run_id, "--results-dir", str(results),
                        "--format", fmt, "-o", str(out)]  # fmt: skip
                measured[label].append(timed(args, env))
        print(f"{'format':<9} {'median s':>9} {'runs (s)':<22} {'cpu s':>6} {'size':>10} "
              f"{'peak':>8}  target")  # fmt: skip
        for label, fmt, _ in rows:
            runs = [seconds for seconds, _, _ in measured[label]]
            median = statistics.median(runs)
            cpu = statistics.median(cpu for _, cpu, _ in measured[label])
            peak = max(mb for _, _, mb in measured[label])
            size = (folder / "out" / label / NAMES[fmt]).stat().st_size
            target = TARGETS[fmt]
            verdict = "baseline" if target is None else (
                f"<= {target:.0f} s: {'met' if median <= target else 'MISSED'}"
            )  # fmt: skip
            if label != fmt:
                verdict = "reference"
            shown = ", ".join(f"{r:.2f}" for r in runs)
            print(f"{label:<9} {median:>9.2f} {shown:<22} {cpu:>6.2f} {size / 1e6:>8.1f} MB "
                  f"{peak:>5.0f} MB  {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
