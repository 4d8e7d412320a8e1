"""The scheduler with a scripted fake provider: error rows, run stoppers, dedupe, stop()."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from promptgrid.api import Experiment
from promptgrid.config import RunOptions, resolve
from promptgrid.engine.limiter import EndpointLimiter
from promptgrid.engine.scheduler import Endpoint, Scheduler
from promptgrid.engine.storeio import StoreIO
from promptgrid.errors import AuthenticationFailed, BadRequest, ServerError, StoreFull, StoreLocked
from promptgrid.grid import expand
from promptgrid.pricing import Price, Pricing
from promptgrid.providers.base import Completion, Request
from promptgrid.spec.schema import RetryPolicy
from promptgrid.store import Owner, Store


class Scripted:
    """Answers by the last message's content; a script maps content -> errors to raise first."""

    def __init__(self, script: dict[str, list[Exception]] | None = None, delay: float = 0) -> None:
        self.script = defaultdict(list, {k: list(v) for k, v in (script or {}).items()})
        self.calls: list[str] = []
        self.delay = delay

    async def complete(self, request: Request) -> Completion:
        content = request.messages[-1]["content"]
        self.calls.append(content)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script[content]:
            raise self.script[content].pop(0)
        return Completion(f"answer to {content}", "stop", 3, 4, resolved_model=request.model)

    async def aclose(self) -> None:
        pass


def experiment(n: int = 4) -> Experiment:
    return Experiment(
        prompts={"p": "q{{ i }}"}, vars={"i": list(range(n))}, params={"model": "m"},
        provider="echo",
    )  # fmt: skip


def cells(exp: Experiment, tmp_path: Path):
    """The experiment's cells, routed as a run would route them."""
    return expand(resolve(exp, RunOptions(results_dir=tmp_path)))


def scheduler_for(
    tmp_path: Path, exp: Experiment, provider, limiter=None, *, run_id: str = "r1",
    use_cache: bool = True, free: bool = True, **kw,
) -> tuple[Store, Scheduler]:  # fmt: skip
    """A store with the run recorded, and a scheduler for it (one "echo" endpoint; ``free``:
    calls cost nothing, so nobody claims them)."""
    store = Store.in_dir(tmp_path)
    store.create_run(run_id, exp.name, None, exp.to_dict(), exp.columns(), exp.total, {})
    floor = store.newest_response()
    io = StoreIO(store.path, Owner.me(), after=0 if use_cache else floor)
    limiter = limiter or EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    kw.setdefault("retry", RetryPolicy())
    pricing = Pricing(free=True) if free else Pricing(overrides={"m": Price(1.0, 2.0)})
    scheduler = Scheduler(io, run_id, {"echo": Endpoint(provider, limiter, pricing)}, **kw)
    return store, scheduler


async def run(tmp_path: Path, provider: Scripted, exp: Experiment, **kw):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    store, scheduler = scheduler_for(
        tmp_path, exp, provider, concurrency=kw.pop("concurrency", 2),
        retry=RetryPolicy(max_attempts=3, max_wait_s=10), sleep=sleep, **kw,
    )  # fmt: skip
    try:
        summary = await scheduler.execute(cells(exp, tmp_path))
    finally:
        scheduler.io.close()
    return store, summary, waits


async def test_retries_then_error_rows(tmp_path: Path) -> None:
    provider = Scripted({
        "q1": [ServerError("bad gateway", http_status=502)],
        "q2": [ServerError("boom", http_status=503)] * 3,
        "q3": [BadRequest("no such model", http_status=404)],
    })  # fmt: skip
    store, summary, waits = await run(tmp_path, provider, experiment())
    assert (summary.ok, summary.errors) == (2, 2)
    assert summary.error_types == {"server_error": 1, "bad_request": 1}
    assert provider.calls.count("q2") == 3 and provider.calls.count("q3") == 1
    assert len(waits) == 3 and all(0 <= w <= 10 for w in waits)
    fields = ("idx", "status", "error_type", "http_status", "attempts")
    query = f"SELECT {', '.join(fields)} FROM results"
    rows = {row[0]: dict(zip(fields, row, strict=True)) for row in store.db.execute(query)}
    assert rows[1]["status"] == "ok" and rows[1]["attempts"] == 2
    assert rows[2] == {"idx": 2, "status": "error", "error_type": "server_error",
                       "http_status": 503, "attempts": 3}  # fmt: skip
    history = store.attempt_history("r1")
    assert [(a["idx"], a["attempt"], a["status"]) for a in history if a["idx"] == 1] == [
        (1, 1, "error"),
        (1, 2, "ok"),
    ]
    store.close()


async def test_run_stopper_leaves_cells_pending(tmp_path: Path) -> None:
    provider = Scripted({"q1": [AuthenticationFailed("bad key", http_status=401)]})
    store, summary, _ = await run(tmp_path, provider, experiment(20), concurrency=1)
    assert isinstance(summary.stopped_by, AuthenticationFailed)
    assert store.indexes("r1") == {0}  # q1 and everything after it stays pending
    assert summary.errors == 0
    store.close()


async def test_stop_lets_inflight_finish_within_grace(tmp_path: Path) -> None:
    provider = Scripted(delay=0.01)
    exp = experiment(50)
    store, scheduler = scheduler_for(tmp_path, exp, provider, concurrency=5, grace_s=5)
    task = asyncio.create_task(scheduler.execute(cells(exp, tmp_path)))
    while len(provider.calls) < 7:
        await asyncio.sleep(0)
    scheduler.stop()
    summary = await task
    scheduler.io.close()
    assert summary.interrupted
    # every call that was started finished and was committed; nothing else was started
    assert summary.ok == len(provider.calls) < 50
    assert store.indexes("r1") == set(range(len(provider.calls)))
    store.close()


async def test_identical_errors_are_shared_not_resent(tmp_path: Path) -> None:
    exp = Experiment(prompts={"p": "same"}, vars={"i": [1, 2, 3]}, params={"model": "m"},
                     provider="echo")  # fmt: skip
    provider = Scripted({"same": [BadRequest("nope", http_status=400)]})
    store, summary, _ = await run(tmp_path, provider, exp, concurrency=3)
    assert provider.calls == ["same"] and summary.errors == 3
    store.close()


@pytest.mark.parametrize("cached", [True, False])
async def test_cache_is_used_unless_disabled(tmp_path: Path, cached: bool) -> None:
    provider = Scripted()
    store, _, _ = await run(tmp_path, provider, experiment(3))
    store.close()
    again = Scripted()
    store2, scheduler = scheduler_for(
        tmp_path, experiment(3), again, run_id="r2", use_cache=cached, concurrency=2
    )
    summary = await scheduler.execute(cells(experiment(3), tmp_path))
    scheduler.io.close()
    assert summary.cached == (3 if cached else 0)
    assert len(again.calls) == (0 if cached else 3)
    store2.close()


async def test_stop_does_not_wait_for_cells_waiting_on_the_limiter(tmp_path: Path) -> None:
    provider = Scripted()
    exp = experiment(10)
    limiter = EndpointLimiter(rpm=2, tpm=10**9, max_concurrency=None)  # 2 now, then one per 30 s
    store, scheduler = scheduler_for(tmp_path, exp, provider, limiter, concurrency=5, grace_s=30)
    task = asyncio.create_task(scheduler.execute(cells(exp, tmp_path)))
    while len(provider.calls) < 2 or scheduler.summary.ok < 2:
        await asyncio.sleep(0)
    scheduler.stop()
    # Not the 30 s grace (nothing was on the wire): within the timeout, or it fails.
    summary = await asyncio.wait_for(task, timeout=20)
    scheduler.io.close()
    assert summary.ok == 2 and store.indexes("r1") == {0, 1}
    store.close()


# ------------------------------------------------------------------ the store fails


class FullDisk(StoreIO):
    """A store whose file may not grow past its current size: SQLite's own "database or disk is
    full" on the next growth, as on a full disk."""

    def _open(self) -> Store:
        if self._store is None:
            store = super()._open()
            pages = store.db.execute("PRAGMA page_count").fetchone()[0]
            store.db.execute(f"PRAGMA max_page_count = {pages + 40}")
        return super()._open()


async def test_a_store_failure_ends_the_run_at_once(tmp_path: Path) -> None:
    exp = Experiment(
        prompts={"p": "{{ i }} " + "x" * 2000}, vars={"i": list(range(400))},
        params={"model": "m"}, provider="echo",
    )  # fmt: skip
    store, scheduler = scheduler_for(tmp_path, exp, Scripted(), concurrency=8)
    scheduler.io = io = FullDisk(store.path, Owner.me(), after=0)
    io.on_commit = scheduler._committed
    with pytest.raises(StoreFull, match="full"):
        # A hang (workers waiting on a writer that died) fails here instead of blocking CI.
        await asyncio.wait_for(scheduler.execute(cells(exp, tmp_path)), timeout=60)
    io.close()
    committed = store.indexes("r1")
    assert 0 < len(committed) < 400  # what was committed before stays
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


async def test_a_lock_held_too_long_ends_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("promptgrid.store.failures.BUSY_TIMEOUT_MS", 50)
    exp = experiment(20)
    store, scheduler = scheduler_for(tmp_path, exp, Scripted(), concurrency=2)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock, and keeps it
    try:
        with pytest.raises(StoreLocked, match="locked"):
            await asyncio.wait_for(scheduler.execute(cells(exp, tmp_path)), timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        scheduler.io.close()
    store.close()


# ------------------------------------------------------------------ de-duplication


@pytest.mark.parametrize("use_cache", [True, False])
async def test_identical_cells_are_sent_once_whatever_the_timing(
    tmp_path: Path, use_cache: bool
) -> None:
    exp = Experiment(prompts={"p": "same"}, vars={"i": list(range(10))}, params={"model": "m"},
                     provider="echo")  # fmt: skip
    provider = Scripted()
    store, scheduler = scheduler_for(tmp_path, exp, provider, concurrency=1, use_cache=use_cache)
    summary = await scheduler.execute(cells(exp, tmp_path))
    scheduler.io.close()
    assert provider.calls == ["same"] and summary.ok == 10
    assert store.counts("r1") == {"ok": 10, "cached": 9}
    store.close()


async def test_a_request_another_process_is_sending_is_waited_for(tmp_path: Path) -> None:
    # Two runs over the same grid in one store, as two processes would: the second waits for the
    # first's answers instead of paying for them too.
    exp = experiment(6)
    slow = Scripted(delay=0.05)
    store, first = scheduler_for(tmp_path, exp, slow, concurrency=6, free=False)
    twin = Scripted()
    other = Owner(os.getpid(), Owner.me().host, "other-process")  # alive: this process
    store.create_run("r2", exp.name, None, exp.to_dict(), exp.columns(), exp.total, {})
    io = StoreIO(store.path, other, after=0)
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    paid = Pricing(overrides={"m": Price(1.0, 2.0)})
    second = Scheduler(io, "r2", {"echo": Endpoint(twin, limiter, paid)}, concurrency=6,
                       retry=RetryPolicy())  # fmt: skip
    task = asyncio.create_task(first.execute(cells(exp, tmp_path)))
    while len(slow.calls) < 6:  # every request of the grid is on the wire
        await asyncio.sleep(0)
    summary = await second.execute(cells(exp, tmp_path))
    await task
    first.io.close()
    io.close()
    assert twin.calls == [] and summary.cached == 6
    store.close()


async def test_rows_cost_their_real_usage_with_cached_tokens_priced_as_cached(
    tmp_path: Path,
) -> None:
    class Cached(Scripted):
        async def complete(self, request: Request) -> Completion:
            self.calls.append(request.messages[-1]["content"])
            return Completion("ok", "stop", prompt_tokens=10, completion_tokens=100,
                              cached_tokens=4, resolved_model="m-2025-01-01")  # fmt: skip

    exp = experiment(1)
    store, scheduler = scheduler_for(tmp_path, exp, Cached(), free=False, concurrency=1)
    scheduler.endpoints["echo"].pricing = Pricing(
        overrides={"m": Price(input=2.0, output=8.0, cached_input=0.5)}
    )
    summary = await scheduler.execute(cells(exp, tmp_path))
    scheduler.io.close()
    expected = (6 * 2.0 + 4 * 0.5 + 100 * 8.0) / 1e6
    (cost,) = [row[0] for row in store.db.execute("SELECT cost_usd FROM results")]
    assert cost == pytest.approx(expected) and summary.spent == pytest.approx(expected)
    assert store.spend("r1") == pytest.approx(expected)
    store.close()
