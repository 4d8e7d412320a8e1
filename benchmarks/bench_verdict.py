"""Verdict-first report benchmark (issue 21): a 20,000-call, 20-variant scored run's HTML
report, written and drawn.

    .venv/bin/python benchmarks/bench_verdict.py                 # ~3 minutes: 3 rounds
    .venv/bin/python benchmarks/bench_verdict.py --rounds 5 --base 59e2058 --no-paint

Targets: the report written in <= 3 s (``promptgrid report RUN`` in a child process, start-up
and imports included: decide() over every factor and score, the forest plots' data, the
heatmap, every call's score marks) and its first paint in Chromium <= 2 s (the report opens
on the verdict). Baselines measured in the same rounds, turn about: the plain parquet export
of the same run (the write: start-up, reading the store, one file), the report as the code of
``--base`` writes it (a commit, default the main tip this work started from, extracted with
``git archive``; ``--base ''`` to skip it), and a static page of the same size (first paint
of that many bytes with no script).

Each write is a child process: its wall time and its CPU time (user + system, from
``os.wait4``) are printed, the median and the spread (min-max) over the rounds, and the load
average at the start and the end: on a shared machine the wall time grows with the others'
load, the CPU time much less. The children compile their bytecode once, in a warm-up round not
timed, into a temporary ``PYTHONPYCACHEPREFIX`` (an installed package has its ``.pyc`` files;
a shell with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module at every start).

First paint is Chromium's ``first-contentful-paint``; "verdict drawn" is when the first
verdict line is in the page (Playwright's round trips included). Needs /usr/bin/chromium and
Playwright for the paint; without them (or with ``--no-paint``) it says so and times the write.
"""

from __future__ import annotations

import argparse
import html
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from checkout import source_at

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
PROMPTGRID = str(Path(sys.executable).with_name("promptgrid"))
CHROMIUM = Path("/usr/bin/chromium")
WRITE_TARGET, PAINT_TARGET = 3.0, 2.0
BASE = "59e2058"


def grid(folder: Path) -> Path:
    """20 prompts × 20 × 50 var values = 20,000 echo calls, scored: the answer echoes the
    prompt, and prompt i is i characters longer, so ``short`` passes for the first prompts,
    fails for the last, and is mixed in between (it depends on the vars' lengths too)."""
    prompts = "\n".join(f'  p{i:02}: "Say {{{{ a }}}} {{{{ b }}}}{"!" * i}"' for i in range(20))
    path = folder / "grid.yaml"
    path.write_text(
        textwrap.dedent("""\
        name: bench-verdict
        provider: echo
        prompts:
        """)
        + prompts
        + textwrap.dedent(f"""
        vars:
          a: [{", ".join(f"a{i}" for i in range(20))}]
          b: [{", ".join(f"b{i}" for i in range(50))}]
        params: {{model: gpt-4o-mini}}
        scores:
          short: {{max_length: 26}}
          has_a1: {{icontains: "a1"}}
        """)
    )
    return path


def paint(browser: object, path: Path, verdict: bool) -> tuple[float, float | None]:
    """First contentful paint (s), and when the first verdict line was in the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    try:
        start = time.perf_counter()
        page.goto(path.as_uri(), wait_until="commit")
        drawn = None
        if verdict:
            page.wait_for_selector(".verdicts li", timeout=60_000)
            drawn = time.perf_counter() - start
        page.wait_for_function(
            "performance.getEntriesByName('first-contentful-paint').length > 0", timeout=60_000
        )
        fcp = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
        return float(fcp) / 1000, drawn
    finally:
        page.close()


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, args)
    return wall, usage.ru_utime + usage.ru_stime


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default=BASE, help="the commit whose report is the baseline")
    parser.add_argument("--no-paint", action="store_true", help="time the write only")
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = folder / "results"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPYCACHEPREFIX=str(folder / "pycache"), PYTHONPATH=str(SRC))
        done = subprocess.run(
            [PROMPTGRID, "run", str(grid(folder)), "--results-dir", str(results),
             "--format", "csv", "--no-progress"],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        run_id = done.stdout.split()[1].rstrip(":")
        print(f"run {run_id}: 20,000 echo calls, 20 prompts, 2 scores\n")
        report = folder / "report.html"
        common = ["--results-dir", str(results)]
        commands = {
            "parquet export (baseline)": ([PROMPTGRID, "export", run_id, *common, "--format",
                                           "parquet", "-o", str(folder / "out")], env),
            "report": ([PROMPTGRID, "report", run_id, *common, "-o", str(report)], env),
        }  # fmt: skip
        if args.base:
            base = source_at(args.base, folder / "base")
            commands[f"report, base {args.base}"] = (
                [PROMPTGRID, "report", run_id, *common, "-o", str(folder / "base.html")],
                {**env, "PYTHONPATH": str(base)},
            )
        for command, child_env in commands.values():  # warm-up: bytecode compiled, not timed
            timed(command, child_env)
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
        for _ in range(args.rounds):
            for label, (command, child_env) in commands.items():
                times[label].append(timed(command, child_env))
        print(f"{'written':<28} {'wall s: median (min-max)':>26} {'CPU s: median (min-max)':>25}")
        for label, runs in times.items():
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            print(f"{label:<28} {spread(walls):>26} {spread(cpus):>25}")
        base_wall = statistics.median(w for w, _ in times["parquet export (baseline)"])
        mine = statistics.median(w for w, _ in times["report"])
        verdict = "met" if mine <= WRITE_TARGET else "MISSED"
        print(
            f"report / parquet export (wall medians): {mine / base_wall:.2f}x; "
            f"report <= {WRITE_TARGET:.0f} s: {verdict} at this load"
        )
        size = report.stat().st_size
        print(f"report size: {size / 1e6:.1f} MB")
        print(f"load average after the writes: {os.getloadavg()[0]:.2f}\n")
        if args.no_paint:
            print("first paint not measured (--no-paint)")
        else:
            _paints(folder, report, size, args.rounds)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def _paints(folder: Path, report: Path, size: int, rounds: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("first paint not measured: playwright not installed (pip install -e '.[test]')")
        return
    if not CHROMIUM.exists():
        print("first paint not measured: no /usr/bin/chromium (apt-get install chromium)")
        return
    static = folder / "static.html"
    filler = html.escape("x" * (size - 200))
    static.write_text(f"<!doctype html><title>static</title><pre>{filler}</pre>")
    fcp: dict[str, list[float]] = {"static page (baseline)": [], "report": []}
    drawn: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for _ in range(rounds):
                fcp["static page (baseline)"].append(paint(browser, static, False)[0])
                first, verdict = paint(browser, report, True)
                fcp["report"].append(first)
                assert verdict is not None
                drawn.append(verdict)
        finally:
            browser.close()
    print(f"{'Chromium':<24} {'median s':>9}  runs (s)")
    for label, runs in fcp.items():
        target = "" if "baseline" in label else (
            f"  <= {PAINT_TARGET:.0f} s: "
            f"{'met' if statistics.median(runs) <= PAINT_TARGET else 'MISSED'}"
        )  # fmt: skip
        shown = ", ".join(f"{r:.2f}" for r in runs)
        print(f"{'first paint, ' + label:<24} {statistics.median(runs):>9.2f}  {shown}{target}")
    shown = ", ".join(f"{r:.2f}" for r in drawn)
    print(f"{'verdict drawn, report':<24} {statistics.median(drawn):>9.2f}  {shown}")


if __name__ == "__main__":
    main()
