"""Start-up: the whole ``promptgrid run`` process against a bare AsyncOpenAI script.

    .venv/bin/python benchmarks/bench_startup.py            # ~1 minute
    options: --repeats N (default 5), --calls N (400), --latency S (0.2), --concurrency N (50)

A fault server (a child process) answers after ``--latency`` seconds. Two commands are timed
end to end as processes, interleaved, ``--repeats`` times each:

* the baseline: ``python bare.py``, an AsyncOpenAI client (aiohttp transport, no retries), a
  semaphore of ``--concurrency`` and ``asyncio.gather`` over the calls, printing the answers'
  count — what a user writes by hand;
* promptgrid: ``promptgrid run exp.yaml --base-url ... --no-progress`` on the same calls, with
  ``max_concurrency`` the same: validation, the store, every answer committed, and the default
  files (parquet and CSV) written.

Target (issue 10): promptgrid's median <= 1.15x the baseline's median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promptgrid.testing import spawn_fault_server

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


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    opts = parser.parse_args()
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    os.environ.pop("OPENAI_BASE_URL", None)
    cli = Path(sys.executable).with_name("promptgrid")
    ideal = opts.calls / opts.concurrency * opts.latency
    print(f"{opts.calls} calls at {opts.latency} s latency, concurrency {opts.concurrency} "
          f"(ideal {ideal:.2f} s of calls), {opts.repeats} repeats, interleaved")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, spawn_fault_server(latency_s=opts.latency) as srv:
        folder = Path(tmp)
        (folder / "bare.py").write_text(BARE, encoding="utf-8")
        words = ", ".join(str(i) for i in range(opts.calls))
        (folder / "exp.yaml").write_text(
            "name: startup\nprovider: openai\n"
            'prompts: {p: "Say {{ i }}"}\n'
            f"vars: {{i: [{words}]}}\n"
            "params: {model: gpt-4o-mini, max_tokens: 16}\n"
            f"limits: {{max_concurrency: {opts.concurrency}, rpm: 1000000, tpm: 1000000000}}\n",
            encoding="utf-8",
        )
        bare, ours = [], []
        for i in range(opts.repeats):
            bare.append(timed([sys.executable, "bare.py", srv.base_url, str(opts.calls),
                               str(opts.concurrency)], folder))  # fmt: skip
            ours.append(timed([str(cli), "run", "exp.yaml", "--base-url", srv.base_url,
                               "--results-dir", f"r{i}", "--no-progress"], folder))  # fmt: skip
    b, p = statistics.median(bare), statistics.median(ours)
    print(f"  bare AsyncOpenAI script: median {b:.2f} s  (runs {[round(x, 2) for x in bare]})")
    print(f"  promptgrid run:          median {p:.2f} s  (runs {[round(x, 2) for x in ours]})")
    verdict = "met" if p / b <= 1.15 else "MISSED"
    print(f"  ratio {p / b:.3f}x (target <= 1.15x): {verdict}")


if __name__ == "__main__":
    main()
