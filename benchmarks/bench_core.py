"""Core pipeline benchmark (issue 3): memory vs grid size, echo throughput, CLI start-up.

    .venv/bin/python benchmarks/bench_core.py

Targets: a 100,000-cell echo grid peaks at <= 300 MB RSS and <= 1.5x the 10,000-cell run;
>= 5,000 echo cells per second end to end; `promptgrid --help` in <= 0.3 s.
Each number is printed with a baseline measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PYTHON = sys.executable
PROMPTGRID = str(Path(PYTHON).with_name("promptgrid"))


def grid_file(folder: Path, repeats: int) -> Path:
    """A 5,000 × repeats cell echo grid (two var axes, two param axes)."""
    path = folder / f"grid{repeats}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: bench-{repeats}
        provider: echo
        prompts:
          p: "Say {{{{ a }}}} and {{{{ b }}}}"
        vars:
          a: [{", ".join(f"a{i}" for i in range(10))}]
          b: [{", ".join(f"b{i}" for i in range(10))}]
        params:
          model: m
          temperature: [0, 0.5, 1.0, 1.5, 2.0]
          seed: [{", ".join(str(i) for i in range(10))}]
        repeats: {repeats}
        """)
    )
    return path


def run_child(args: list[str], cwd: Path) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in MB) of that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024


async def bare_loop(n: int, db_path: Path) -> float:
    """Baseline: the same echo answers with str.format, gather and one sqlite insert each."""
    from promptgrid.providers.base import Request
    from promptgrid.providers.echo import EchoProvider

    echo = EchoProvider()
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE r (i INTEGER PRIMARY KEY, response TEXT)")
    sem = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        async with sem:
            request = Request(
                "echo", "m", ({"role": "user", "content": f"Say a{i % 10} and b{i}"},)
            )
            done = await echo.complete(request)
            db.execute("INSERT INTO r VALUES (?, ?)", (i, done.text))

    start = time.perf_counter()
    for chunk in range(0, n, 10_000):  # gather in chunks so the baseline's memory stays sane
        db.execute("BEGIN")
        await asyncio.gather(*(one(i) for i in range(chunk, min(n, chunk + 10_000))))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def startup(args: list[str], repeat: int = 7) -> float:
    """Best wall time of a command over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = {}
        for repeats in (2, 20):
            path = grid_file(folder, repeats)
            cells = 5_000 * repeats
            wall, rss = run_child(
                [PROMPTGRID, "run", str(path), "--no-progress", "--results-dir", str(folder / "r")],
                folder,
            )
            results[cells] = (wall, rss)
            print(
                f"echo grid {cells:>7,} cells: {wall:6.2f} s, {cells / wall:7,.0f} cells/s "
                f"(whole command, start-up and parquet+csv export included), peak RSS {rss:6.1f} MB"
            )
        (_, m10), (w100, m100) = results[10_000], results[100_000]
        print(
            f"memory: 100k/10k peak RSS = {m100 / m10:.2f}x (target <= 1.5x), "
            f"100k peak {m100:.0f} MB (target <= 300 MB)"
        )
        base = asyncio.run(bare_loop(100_000, folder / "bare.sqlite"))
        print(
            f"baseline bare asyncio.gather + echo + sqlite loop, 100k cells: {base:.2f} s, "
            f"{100_000 / base:,.0f} cells/s"
        )
        print(
            f"throughput: promptgrid {100_000 / w100:,.0f} cells/s end to end "
            f"(target >= 5,000) = {base / w100:.2f}x the bare loop"
        )
    help_s = startup([PROMPTGRID, "--help"])
    bare_s = startup([PYTHON, "-c", "pass"])
    print(
        f"start-up: promptgrid --help {help_s * 1000:.0f} ms (target <= 300 ms); "
        f"bare python {bare_s * 1000:.0f} ms; ratio {help_s / bare_s:.1f}x"
    )


if __name__ == "__main__":
    main()
