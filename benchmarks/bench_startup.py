"""The whole ``promptgrid run`` process against a bare AsyncOpenAI script (issues 10 and 24).

    .venv/bin/python benchmarks/bench_startup.py                      # both scenarios, ~2 min
    .venv/bin/python benchmarks/bench_startup.py throughput --repeats 5 --base 59e2058
    scenarios: throughput (2,000 calls, instant server, concurrency 100),
               latency (400 calls at 200 ms, concurrency 50), all (default)
    options: --repeats N (default 3), --base COMMIT (also time that commit's promptgrid)

For each scenario a fault server runs in a child process of its own (``spawn_fault_server``:
aiohttp, the standard library and nothing of the client's), and these commands are run as
whole child processes against it, interleaved repeat after repeat so the machine's load falls
on all alike:

* **bare**: ``python bare.py``, an AsyncOpenAI client (aiohttp transport, no retries), a
  semaphore of the scenario's concurrency and ``asyncio.gather`` over the calls, printing the
  answers' count — what a user writes by hand, with no rendering, no store and no export;
* **promptgrid**: ``promptgrid run exp.yaml --base-url ... --no-progress`` on the same calls
  (the same texts, ``max_concurrency`` the same, rpm/tpm declared so no probe call goes first):
  start-up, validation, the store, every answer committed, and the default files (parquet and
  CSV) written;
* with ``--base``, the same command run by the code of that commit (``git archive`` of its
  ``src``, on ``PYTHONPATH``), to show a change against the code before it.

Each process is reaped with ``os.wait4``: its wall seconds, CPU seconds (user + sys: what the
process itself spent, the number a busy shared machine distorts least) and peak RSS. Printed:
each run, then median and spread (min-max) per command, the ratios to the bare script's
medians, and the load average at the start and end of each scenario.

Targets (issue 24 items 1 and 5): wall median <= 1.00x bare on throughput, <= 1.15x bare on
latency; peak RSS <= 120 MB on throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from checkout import source_at

from promptgrid.testing import spawn_fault_server

HERE = Path(__file__).resolve().parent

BARE = """\
import asyncio, sys
import openai

async def main(base_url, calls, concurrency):
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0,
                                http_client=openai.DefaultAioHttpClient())
    gate = asyncio.Semaphore(concurrency)

    async def one(i):
        async with gate:
            r = await client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=16,
                messages=[{"role": "user", "content": f"Say {i}"}])
            return r.choices[0].message.content

    answers = await asyncio.gather(*(one(i) for i in range(calls)))
    await client.close()
    print(len(answers))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

CLI = "import sys; from promptgrid.cli import main; sys.exit(main())"

SCENARIOS = {  # name: (calls, server latency in seconds, concurrency, wall target vs bare)
    "throughput": (2_000, 0.0, 100, 1.00),
    "latency": (400, 0.2, 50, 1.15),
}
RSS_TARGET_MB = 120  # issue 24 item 5, on the throughput scenario


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mb: float


def measured(args: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """Run one command to its end; its wall, CPU (user + sys) seconds and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stderr is not None
    err = proc.stderr.read()  # to its end: a full pipe would block the child
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed ({proc.returncode}): {err[-2000:].decode()}")
    # Linux reports ru_maxrss in kilobytes.
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def spread(values: list[float], unit: str, digits: int = 2) -> str:
    return (f"median {statistics.median(values):.{digits}f}{unit} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")  # fmt: skip


def experiment(folder: Path, calls: int, concurrency: int) -> None:
    words = ", ".join(str(i) for i in range(calls))
    (folder / "exp.yaml").write_text(
        "name: startup\nprovider: openai\n"
        'prompts: {p: "Say {{ i }}"}\n'
        f"vars: {{i: [{words}]}}\n"
        "params: {model: gpt-4o-mini, max_tokens: 16}\n"
        f"limits: {{max_concurrency: {concurrency}, rpm: 1000000, tpm: 1000000000}}\n",
        encoding="utf-8",
    )


def scenario(name: str, repeats: int, base: str | None) -> None:
    calls, latency, concurrency, target = SCENARIOS[name]
    print(f"\n== {name}: {calls:,} calls, server latency {latency * 1000:.0f} ms, concurrency "
          f"{concurrency}; {repeats} repeats, interleaved")  # fmt: skip
    print(f"   load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench"}
    env.pop("OPENAI_BASE_URL", None)
    with tempfile.TemporaryDirectory() as tmp, spawn_fault_server(latency_s=latency) as srv:
        folder = Path(tmp)
        (folder / "bare.py").write_text(BARE, encoding="utf-8")
        experiment(folder, calls, concurrency)
        src = HERE.parent / "src"
        # A store of its own for every run: none finds another's answers in its cache.
        codes = {"promptgrid": src} | ({f"base {base}": source_at(base, folder)} if base else {})
        samples: dict[str, list[Sample]] = {"bare": [], **{code: [] for code in codes}}
        for i in range(repeats):
            bare = [sys.executable, "bare.py", srv.base_url, str(calls), str(concurrency)]
            samples["bare"].append(measured(bare, folder, env))
            for code, path in codes.items():
                run = [sys.executable, "-c", CLI, "run", "exp.yaml", "--base-url",
                       srv.base_url, "--results-dir", f"{code.split()[0]}-{i}",
                       "--no-progress"]  # fmt: skip
                samples[code].append(measured(run, folder, {**env, "PYTHONPATH": str(path)}))
            print("   " + "; ".join(
                f"{k} {v[-1].wall:.2f} s wall, {v[-1].cpu:.2f} s CPU, {v[-1].rss_mb:.0f} MB"
                for k, v in samples.items()))  # fmt: skip
    bare_wall = statistics.median(s.wall for s in samples["bare"])
    bare_cpu = statistics.median(s.cpu for s in samples["bare"])
    for code, values in samples.items():
        wall, cpu = [s.wall for s in values], [s.cpu for s in values]
        rss = [s.rss_mb for s in values]
        print(f"   {code:<16} wall {spread(wall, ' s')}, CPU {spread(cpu, ' s')}, "
              f"peak RSS {spread(rss, ' MB', 0)}")  # fmt: skip
        if code != "bare":
            ratio = statistics.median(wall) / bare_wall
            verdict = "met" if ratio <= target else "MISSED"
            line = (f"     {code} / bare: wall {ratio:.3f}x (target <= {target:.2f}x: {verdict}), "
                    f"CPU {statistics.median(cpu) / bare_cpu:.3f}x")  # fmt: skip
            if name == "throughput":
                ok = "met" if statistics.median(rss) <= RSS_TARGET_MB else "MISSED"
                line += f", peak RSS target <= {RSS_TARGET_MB} MB: {ok}"
            print(line)
    print(f"   load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", nargs="?", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", help="also time this commit's promptgrid (git archive)")
    opts = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    for name in SCENARIOS:
        if opts.scenario in (name, "all"):
            scenario(name, opts.repeats, opts.base)


if __name__ == "__main__":
    main()
