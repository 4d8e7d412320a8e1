"""Verdict-first report benchmark (issue 21): a 20,000-call, 20-variant scored run's HTML
report, written and drawn.

    .venv/bin/python benchmarks/bench_verdict.py [--rounds 3]

Targets: the report written in <= 3 s (``promptgrid report RUN`` in a child process, start-up
and imports included: decide() over every factor and score, the forest plots' data, the
heatmap, every call's score marks) and its first paint in Chromium <= 2 s (the report opens
on the verdict). Baselines measured in the same rounds, turn about: the plain parquet export
of the same run (the write), and a static page of the same size (first paint of that many
bytes with no script). First paint is Chromium's ``first-contentful-paint``; "verdict drawn"
is when the first verdict line is in the page (Playwright's round trips included). Needs
/usr/bin/chromium and Playwright for the paint; without them it says so and times the write.
"""

from __future__ import annotations

import argparse
import html
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROMPTGRID = str(Path(sys.executable).with_name("promptgrid"))
CHROMIUM = Path("/usr/bin/chromium")
WRITE_TARGET, PAINT_TARGET = 3.0, 2.0


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


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = folder / "results"
        done = subprocess.run(
            [PROMPTGRID, "run", str(grid(folder)), "--results-dir", str(results),
             "--format", "csv", "--no-progress"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        run_id = done.stdout.split()[1].rstrip(":")
        print(f"run {run_id}: 20,000 echo calls, 20 prompts, 2 scores\n")
        report = folder / "report.html"
        writes: dict[str, list[float]] = {"parquet (baseline)": [], "report": []}
        for _ in range(rounds):
            writes["parquet (baseline)"].append(timed(
                [PROMPTGRID, "export", run_id, "--results-dir", str(results), "--format",
                 "parquet", "-o", str(folder / "out")]))  # fmt: skip
            writes["report"].append(timed(
                [PROMPTGRID, "report", run_id, "--results-dir", str(results), "-o",
                 str(report)]))  # fmt: skip
        size = report.stat().st_size
        print(f"{'written':<20} {'median s':>9}  runs (s)")
        for label, runs in writes.items():
            target = "" if "baseline" in label else (
                f"  <= {WRITE_TARGET:.0f} s: "
                f"{'met' if statistics.median(runs) <= WRITE_TARGET else 'MISSED'}"
            )  # fmt: skip
            shown = ", ".join(f"{r:.2f}" for r in runs)
            print(f"{label:<20} {statistics.median(runs):>9.2f}  {shown}{target}")
        print(f"report size: {size / 1e6:.1f} MB\n")
        _paints(folder, report, size, rounds)


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
