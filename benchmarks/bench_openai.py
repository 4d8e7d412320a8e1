"""Issue 4 benchmarks: the openai path under rate limits, at full speed, and behind latency.

    .venv/bin/python benchmarks/bench_openai.py all          # every benchmark below, in order
    .venv/bin/python benchmarks/bench_openai.py ratelimit    # or: throughput | latency | tpm
    options: --repeats N (default 3)

Each benchmark prints promptgrid's number next to a baseline measured in the same run, and the
ratio against its target. promptgrid runs through the public API (``promptgrid.arun`` with a
temporary ``results_dir``, ``progress=False``, ``formats="parquet"``), so spec loading, the
scheduler, the SQLite store, the parquet export and loading the DataFrame are all inside the
timing. The fault server (:func:`promptgrid.testing.spawn_fault_server`) runs in a child
process so it does not share the client's GIL. The machine has 2 cores shared with other work:
each measurement is repeated (``--repeats``) and the median and best are printed.

1. **ratelimit** — the server enforces 300 RPM with a full bucket (300 at once, then 5/s); 400
   calls cannot finish before (400 - 300) / 5 = 20 s. Target: promptgrid within 1.15x of that
   (23 s), with 429 answers <= 5 % of calls, both with ``rpm: 300`` declared and with no limit
   declared (learned from the ``x-ratelimit-*`` headers). Baseline: ``asyncio.gather`` over 400
   ``AsyncOpenAI`` calls with the SDK's default retries (2) and transport.
2. **throughput** — 2,000 calls to an instant server at concurrency 100. Target: promptgrid >=
   0.85x the calls per second of a bare ``AsyncOpenAI`` + ``asyncio.gather`` loop on the same
   transport (``openai.DefaultAioHttpClient``, as promptgrid uses; ``max_retries=0``, a
   semaphore of 100). The same loop over the default httpx2 transport is shown for reference.
3. **latency** — 400 calls at 200 ms server latency, concurrency 50 (ideal 400 / 50 x 0.2 =
   1.6 s). Target: promptgrid within 1.1x of the bare aiohttp loop at the same concurrency.
4. **tpm** — a server allowing 30,000 tokens per minute (bucket full: 30,000 at once, then 500/s;
   a request is charged its prompt plus ``max_tokens`` up front), and a grid of prompts of mixed
   sizes: 1 large (about 1,500 tokens charged) per 10 small (about 60), in a seeded shuffle,
   ``tpm: 30000`` declared. Definitions:

   * *TPM used* = (tokens the server charged - the initial bucket) / (500 tokens/s x the time
     from the first to the last request). It is the share of the refill the run turned into
     requests (the initial bucket is excluded: it is free for everybody). Target: >= 90 %.
   * A prompt's *fair share* = its charged tokens / 500 tokens/s: the time the bucket needs to
     refill what it takes. Its *wait* = the time from the moment every prompt ahead of it in
     the grid had been sent to the moment it was sent (send times recorded client side, when
     promptgrid hands the request to the SDK). A first-come-first-served line gives each prompt
     about its fair share; a smallest-first one makes a large prompt wait behind every small one
     queued after it. Target: no prompt waits more than 2x its fair share (prompts sent inside
     the initial burst have a wait of about 0 and are counted too). Baseline: the ideal
     FIFO schedule's duration, (tokens - bucket) / 500 tokens/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

import promptgrid
from promptgrid.testing import RemoteFaultServer, spawn_fault_server

os.environ["OPENAI_API_KEY"] = "sk-bench"  # the fault server accepts any key
os.environ.pop("OPENAI_BASE_URL", None)


# --------------------------------------------------------------------------- helpers


def write_experiment(
    folder: Path,
    messages: list[str],
    *,
    limits: str,
    retry: str = "{max_attempts: 10, max_wait_s: 60}",
    max_tokens: int = 16,
) -> Path:
    """An experiment with one cell per message, in this order: a ``cases_file`` of one column.

    (A CSV, as a dataset of prompts usually is: parsing 2,000 inline YAML rows would add about
    0.13 s of spec loading to every run, against 4 ms for the CSV.)
    """
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([m] for m in messages)
    path = folder / "bench.yaml"
    path.write_text(
        "name: bench\n"
        "provider: openai\n"
        'prompts: {p: "{{ text }}"}\n'
        "cases_file: cases.csv\n"
        f"params: {{model: gpt-4o-mini, max_tokens: {max_tokens}}}\n"
        f"limits: {limits}\n"
        f"retry: {retry}\n",
        encoding="utf-8",
    )
    return path


async def promptgrid_run(path: Path, server: RemoteFaultServer) -> tuple[float, Any]:
    """(wall seconds, DataFrame) of one promptgrid run through the public API."""
    with tempfile.TemporaryDirectory() as results:
        start = time.perf_counter()
        df = await promptgrid.arun(
            path, base_url=server.base_url, results_dir=results, progress=False,
            formats="parquet",
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    failed = int((df["status"] != "ok").sum())
    if failed:
        kinds = df["error_type"].value_counts().to_dict()
        print(f"    !! promptgrid: {failed} error rows: {kinds}")
    return elapsed, df


@contextlib.asynccontextmanager
async def sdk_client(base_url: str, transport: str, max_retries: int = 0) -> Any:
    """An AsyncOpenAI on the aiohttp transport, the default httpx2 one, or the SDK's default."""
    kwargs: dict[str, Any] = {"base_url": base_url, "api_key": "sk-bench"}
    if transport == "aiohttp":
        kwargs["http_client"] = openai.DefaultAioHttpClient()
    elif transport == "httpx2":
        kwargs["http_client"] = openai.DefaultAsyncHttpxClient()
    async with openai.AsyncOpenAI(max_retries=max_retries, **kwargs) as client:
        yield client


async def bare_loop(
    base_url: str, messages: list[str], concurrency: int | None, transport: str,
    max_retries: int = 0,
) -> tuple[float, int]:  # fmt: skip
    """The baseline: ``asyncio.gather`` over the SDK. Returns (wall seconds, calls lost)."""
    async with sdk_client(base_url, transport, max_retries) as client:
        gate = asyncio.Semaphore(concurrency) if concurrency else contextlib.nullcontext()

        async def one(text: str) -> None:
            async with gate:  # type: ignore[attr-defined]
                answer = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": text}],
                    max_tokens=16,
                )
                assert answer.choices[0].message.content == f"echo: {text}"

        start = time.perf_counter()
        outcomes = await asyncio.gather(*(one(m) for m in messages), return_exceptions=True)
        elapsed = time.perf_counter() - start
    return elapsed, sum(isinstance(o, BaseException) for o in outcomes)


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} s, best {min(values):6.2f} s"


def rate_limited(server: RemoteFaultServer) -> int:
    return sum(server.stats()["rate_limited"].values())


# --------------------------------------------------------------------------- 1. rate limit


async def bench_ratelimit(repeats: int) -> None:
    calls, rpm = 400, 300
    ideal = (calls - rpm) / (rpm / 60)
    messages = [f"Rate {i}" for i in range(calls)]
    print(f"\n== ratelimit: {calls} calls, server {rpm} RPM, bucket full; minimum {ideal:.0f} s")
    with tempfile.TemporaryDirectory() as tmp, spawn_fault_server(rpm=rpm) as server:
        folder = Path(tmp)
        server.reset()
        wall, lost = await bare_loop(server.base_url, messages, None, "default", max_retries=2)
        stats = server.stats()
        print(
            f"  baseline gather, SDK retries (2): {wall:6.2f} s, {calls - lost} ok, {lost} lost, "
            f"{rate_limited(server)} x 429 in {stats['requests']} requests"
        )
        for label, limits in (
            ("rpm: 300 declared", f"{{rpm: {rpm}, max_concurrency: 100}}"),
            ("no limit declared", "{max_concurrency: 100}"),
        ):
            path = write_experiment(folder, messages, limits=limits)
            times, limited = [], []
            for _ in range(repeats):
                server.reset()  # full bucket again, counters zeroed
                elapsed, _ = await promptgrid_run(path, server)
                times.append(elapsed)
                limited.append(rate_limited(server))
            worst = max(limited)
            print(
                f"  promptgrid, {label}: {summary(times)} = "
                f"{statistics.median(times) / ideal:.3f}x the minimum (target <= 1.15x); "
                f"429s {limited} (max {worst / calls:.1%} of calls, target <= 5 %)"
            )


# --------------------------------------------------------------------------- 2. throughput


async def bench_throughput(repeats: int) -> None:
    calls, concurrency = 2_000, 100
    messages = [f"Fast {i}" for i in range(calls)]
    print(f"\n== throughput: {calls:,} calls, instant server, concurrency {concurrency}")
    with tempfile.TemporaryDirectory() as tmp, spawn_fault_server() as server:
        await bare_loop(server.base_url, messages[:200], concurrency, "aiohttp")  # warm-up
        await promptgrid_run(write_experiment(Path(tmp), messages[:200], limits="{}"), server)
        path = write_experiment(Path(tmp), messages, limits=f"{{max_concurrency: {concurrency}}}")
        runs: dict[str, list[float]] = {"aiohttp": [], "httpx2": [], "promptgrid": []}
        for _ in range(repeats):  # interleaved, so background load hits all three alike
            for transport in ("aiohttp", "httpx2"):
                wall, lost = await bare_loop(server.base_url, messages, concurrency, transport)
                assert lost == 0, f"{lost} calls lost on {transport}"
                runs[transport].append(wall)
            runs["promptgrid"].append((await promptgrid_run(path, server))[0])
        echo = []  # diagnostic: promptgrid's own cost, the same grid on the offline provider
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as results:
                start = time.perf_counter()
                await promptgrid.arun(path, provider="echo", results_dir=results, progress=False,
                                      formats="parquet")  # fmt: skip
                echo.append(time.perf_counter() - start)
        rate = {k: calls / statistics.median(v) for k, v in runs.items()}
        best = {k: calls / min(v) for k, v in runs.items()}
        for name, label in (
            ("aiohttp", "bare AsyncOpenAI + gather, aiohttp"),
            ("httpx2", "bare AsyncOpenAI + gather, httpx2 (reference)"),
            ("promptgrid", "promptgrid.arun (store + export included)"),
        ):
            print(f"  {label:<47} {summary(runs[name])}: {rate[name]:6,.0f} calls/s "
                  f"(best {best[name]:,.0f})")  # fmt: skip
        per_cell = statistics.median(echo) / calls * 1e6
        print(f"  {'diagnostic: promptgrid, echo provider (no HTTP)':<47} {summary(echo)}: "
              f"{per_cell:,.0f} us of promptgrid per cell")  # fmt: skip
        median_ratio = rate["promptgrid"] / rate["aiohttp"]
        best_ratio = best["promptgrid"] / best["aiohttp"]
        print(f"  ratio promptgrid / bare aiohttp: median {median_ratio:.2f}x, "
              f"best {best_ratio:.2f}x (target >= 0.85x)")  # fmt: skip


# --------------------------------------------------------------------------- 3. latency


async def bench_latency(repeats: int) -> None:
    calls, concurrency, latency = 400, 50, 0.2
    ideal = calls / concurrency * latency
    messages = [f"Slow {i}" for i in range(calls)]
    print(f"\n== latency: {calls} calls at {latency * 1000:.0f} ms, concurrency {concurrency} "
          f"(ideal {ideal:.1f} s)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, spawn_fault_server(latency_s=latency) as server:
        folder = Path(tmp)
        (folder / "declared").mkdir()
        path = write_experiment(folder, messages, limits=f"{{max_concurrency: {concurrency}}}")
        # Limits declared: no probe (with none declared, the first call goes alone to read the
        # server's x-ratelimit-* headers, which costs up to one round trip here).
        declared = write_experiment(
            folder / "declared", messages,
            limits=f"{{max_concurrency: {concurrency}, rpm: 1000000, tpm: 1000000000}}",
        )  # fmt: skip
        await bare_loop(server.base_url, messages[:50], concurrency, "aiohttp")  # warm-up
        runs: dict[str, list[float]] = {"bare": [], "promptgrid": [], "declared": []}
        for _ in range(repeats):
            wall, lost = await bare_loop(server.base_url, messages, concurrency, "aiohttp")
            assert lost == 0
            runs["bare"].append(wall)
            runs["promptgrid"].append((await promptgrid_run(path, server))[0])
            runs["declared"].append((await promptgrid_run(declared, server))[0])
        bare = statistics.median(runs["bare"])
        print(f"  bare AsyncOpenAI + gather, aiohttp:         {summary(runs['bare'])}")
        for name, label in (("promptgrid", "promptgrid.arun, no limits declared:"),
                            ("declared", "promptgrid.arun, rpm/tpm declared:")):  # fmt: skip
            pg = statistics.median(runs[name])
            best = min(runs[name]) / min(runs["bare"])
            print(f"  {label:<43} {summary(runs[name])}; ratio to bare: median "
                  f"{pg / bare:.3f}x, best {best:.3f}x (target <= 1.1x); "
                  f"to ideal {pg / ideal:.3f}x")  # fmt: skip


# --------------------------------------------------------------------------- 4. tpm


def tpm_messages(groups: int, seed: int = 4) -> list[str]:
    """1 large message (~1,450 tokens) per 10 small ones, seeded shuffle; each unique."""
    rng = random.Random(seed)
    out = []
    for g in range(groups):
        group = [f"small {g}-{i}" for i in range(10)]
        group.append(f"large {g} " + "lorem ipsum dolor sit amet " * 215)  # ~5,800 chars
        rng.shuffle(group)
        out += group
    return out


def fairness(
    messages: list[str], sent: dict[str, float], charged: dict[str, int], tpm: int
) -> tuple[float, float, str]:
    """(TPM used, worst wait / fair share, the kind of prompt that waited worst); see the
    module docstring for the definitions."""
    rate = tpm / 60
    times = [sent[m] for m in messages]
    used = (sum(charged.values()) - tpm) / (rate * (max(times) - min(times)))
    worst, kind, ahead = 0.0, "", times[0]
    for m, t in zip(messages, times, strict=True):
        ratio = max(0.0, t - ahead) / (charged[m] / rate)
        if ratio > worst:
            worst, kind = ratio, m.split()[0]
        ahead = max(ahead, t)
    return used, worst, kind


async def bare_tpm(
    base_url: str, messages: list[str], charged: dict[str, int], tpm: int, max_tokens: int
) -> tuple[float, dict[str, float]]:
    """Baseline: ``asyncio.gather`` with a plain ``aiolimiter.AsyncLimiter(tpm, 60)`` in front of
    each call (acquiring the server's exact charge), a semaphore of 50, no FIFO line, and the
    SDK's default retries for the odd 429 (the two buckets drift apart by milliseconds)."""
    from aiolimiter import AsyncLimiter

    bucket, gate, sent = AsyncLimiter(tpm, 60), asyncio.Semaphore(50), {}
    async with sdk_client(base_url, "aiohttp", max_retries=2) as client:

        async def one(text: str) -> None:
            async with gate:
                await bucket.acquire(charged[text])
                sent[text] = time.perf_counter()
                await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": text}],
                    max_tokens=max_tokens,
                )

        start = time.perf_counter()
        await asyncio.gather(*(one(m) for m in messages))
        return time.perf_counter() - start, sent


async def bench_tpm(repeats: int) -> None:
    tpm, max_tokens = 30_000, 50
    messages = tpm_messages(20)
    charged = {m: len(m) // 4 + 1 + max_tokens for m in messages}  # the server's count
    total = sum(charged.values())
    ideal = (total - tpm) / (tpm / 60)
    print(f"\n== tpm: {len(messages)} prompts (1 large per 10 small), {total:,} tokens charged, "
          f"server {tpm:,} TPM (bucket full); FIFO minimum {ideal:.1f} s")  # fmt: skip

    sent: dict[str, float] = {}
    from promptgrid.providers.openai import OpenAIProvider

    complete = OpenAIProvider.complete

    async def recording(self: OpenAIProvider, request: Any) -> Any:
        sent.setdefault(request.messages[-1]["content"], time.perf_counter())
        return await complete(self, request)

    def report(label: str, walls: list[float], results: list[tuple[float, float, str]],
               limited: list[int]) -> None:  # fmt: skip
        print(f"  {label}: wall {summary(walls)}; TPM used "
              f"{[f'{u:.1%}' for u, _, _ in results]} (target >= 90 %); worst wait / fair share "
              f"{[f'{w:.2f}x ({kind})' for _, w, kind in results]} (target <= 2x); "
              f"429s {limited}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp, spawn_fault_server(tpm=tpm) as server:
        server.reset()
        wall, bare_sent = await bare_tpm(server.base_url, messages, charged, tpm, max_tokens)
        report("baseline gather + aiolimiter, no FIFO", [wall],
               [fairness(messages, bare_sent, charged, tpm)], [rate_limited(server)])  # fmt: skip
        OpenAIProvider.complete = recording  # type: ignore[method-assign]
        try:
            for label, limits in (
                ("promptgrid, tpm: 30000 declared", f"{{tpm: {tpm}, max_concurrency: 50}}"),
                ("promptgrid, no limit declared", "{max_concurrency: 50}"),
            ):
                path = write_experiment(Path(tmp), messages, limits=limits, max_tokens=max_tokens)
                walls, results, limited = [], [], []
                for _ in range(repeats):
                    server.reset()
                    sent.clear()
                    wall, df = await promptgrid_run(path, server)
                    assert (df["prompt_tokens"] + max_tokens).sum() == total
                    walls.append(wall)
                    results.append(fairness(messages, sent, charged, tpm))
                    limited.append(rate_limited(server))
                report(label, walls, results, limited)
        finally:
            OpenAIProvider.complete = complete  # type: ignore[method-assign]


# --------------------------------------------------------------------------- main

BENCHES = {
    "ratelimit": bench_ratelimit,
    "throughput": bench_throughput,
    "latency": bench_latency,
    "tpm": bench_tpm,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench", choices=[*BENCHES, "all"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, openai {openai.__version__}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    for name, bench in BENCHES.items():
        if args.bench in (name, "all"):
            asyncio.run(bench(args.repeats))


if __name__ == "__main__":
    main()
