"""A hard budget: admission by worst case, settlement by real cost, a stop that never overspends,
and a resume with a higher cap that finishes the run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import promptgrid
from promptgrid.engine.budget import Budget
from promptgrid.errors import BudgetExceeded, UsageError
from promptgrid.store import Store
from promptgrid.testing import FaultServer

KEY = "sk-test-budget-0123456789"


async def test_admits_while_the_worst_case_fits() -> None:
    budget = Budget(cap=1.0, spent=0.2)
    first = await budget.admit(0.3)
    second = await budget.admit(0.5)  # 0.2 spent + 0.3 + 0.5 reserved = 1.0: fits
    assert budget.reserved == pytest.approx(0.8)
    budget.settle(first, 0.01)  # it cost much less than its worst case
    assert budget.spent == pytest.approx(0.21) and budget.reserved == pytest.approx(0.5)
    budget.settle(second, 0.5)


async def test_a_call_that_does_not_fit_waits_for_calls_in_flight() -> None:
    budget = Budget(cap=1.0)
    held = await budget.admit(0.8)
    waiting = asyncio.ensure_future(budget.admit(0.5))
    await asyncio.sleep(0)
    assert not waiting.done()  # 0.8 + 0.5 > 1.0 while the first is on the wire
    budget.settle(held, 0.1)  # it cost 0.1: room for the waiting one
    reservation = await asyncio.wait_for(waiting, timeout=10)
    assert budget.spent == pytest.approx(0.1) and budget.reserved == pytest.approx(0.5)
    budget.settle(reservation, 0.5)


async def test_with_nothing_in_flight_the_budget_is_spent() -> None:
    budget = Budget(cap=1.0, spent=0.9)
    with pytest.raises(BudgetExceeded) as caught:
        await budget.admit(0.2)
    error = caught.value
    assert (error.cap, error.spent, error.next_worst) == (1.0, 0.9, 0.2)
    assert error.exit_code == 4 and "$0.9000 of $1.0000" in str(error)


async def test_an_unknown_fate_counts_at_its_worst_case() -> None:
    budget = Budget(cap=1.0)
    reservation = await budget.admit(0.4)
    budget.settle(reservation, reservation.worst)  # a timeout: the server may have charged
    assert budget.spent == pytest.approx(0.4)


def experiment(write_yaml, server: FaultServer, cells: int, budget: str = "") -> Path:
    return write_yaml(
        f"""\
        name: budgeted
        provider: openai
        providers:
          openai: {{base_url: "{server.base_url}"}}
        prompts:
          p: "question {{{{ i }}}}"
        vars:
          i: [{", ".join(str(i) for i in range(cells))}]
        params: {{model: gpt-4o-mini, max_tokens: 50}}
        limits: {{max_concurrency: 4, rpm: 60000, tpm: 100000000}}
        {budget}
        """
    )


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def test_the_budget_stops_the_run_within_its_cap_and_a_higher_cap_finishes_it(
    write_yaml, tmp_path: Path
) -> None:
    cells, cap = 40, 0.0002  # about 35 calls' real cost; each call's worst case ~ $0.00003
    with FaultServer() as server:
        path = experiment(write_yaml, server, cells)
        with pytest.raises(BudgetExceeded, match="budget is spent") as caught:
            promptgrid.run(path, results_dir=tmp_path, progress=False, max_cost=cap)
        assert "max_cost=" in str(caught.value)
        with Store.in_dir(tmp_path, readonly=True) as store:
            (run,) = store.runs()
            spent, done = store.spend(run.run_id), store.counts(run.run_id).get("ok", 0)
        assert run.status == "stopped" and 0 < done < cells
        assert 0 < spent <= cap  # never past the cap
        assert server.stats()["requests"] == done  # nothing sent beyond what was paid for

        df = promptgrid.run(path, results_dir=tmp_path, progress=False, resume=True,
                            max_cost=1.0)  # fmt: skip
        assert len(df) == cells and (df["status"] == "ok").all()
        assert server.stats()["requests"] == cells  # the rest, and only the rest
    with Store.in_dir(tmp_path, readonly=True) as store:
        assert store.runs()[0].status == "finished"
        assert df["cost_usd"].sum() == pytest.approx(store.spend(run.run_id))


def test_the_cli_exits_4_with_what_was_spent_and_how_to_finish(write_yaml, tmp_path: Path) -> None:
    with FaultServer() as server:
        path = experiment(write_yaml, server, 30, budget="budget: {max_cost_usd: 0.0001}")
        cli = [sys.executable, "-c", "from promptgrid.cli import main; main()"]
        env = {**os.environ, "OPENAI_API_KEY": KEY}
        done = subprocess.run(
            [*cli, "run", str(path), "--results-dir", str(tmp_path), "--no-progress"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert done.returncode == 4, done.stderr
        assert "the budget is spent" in done.stderr and "cells left" in done.stderr
        assert "--max-cost" in done.stderr and "Traceback" not in done.stderr
        line = next(x for x in done.stderr.splitlines() if x.startswith("resume with: "))
        args = line.removeprefix("resume with: ").split()
        again = subprocess.run([*cli, *args[1:], "--no-progress"], capture_output=True,
                               text=True, env=env, timeout=60)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert server.stats()["requests"] == 30


def test_a_budget_needs_every_call_bounded(write_yaml, tmp_path: Path) -> None:
    unbounded = Path(tmp_path / "x.yaml")
    unbounded.write_text(
        "provider: openai\nprompts: {p: hi}\nparams: {model: house-model}\n"
        "pricing: {house-model: {input: 1, output: 2}}\n"
    )
    with pytest.raises(UsageError, match="no output limit: set max_tokens"):
        promptgrid.run(unbounded, results_dir=tmp_path, max_cost=1, progress=False)
    unpriced = Path(tmp_path / "y.yaml")
    unpriced.write_text("provider: openai\nprompts: {p: hi}\nparams: {model: m, max_tokens: 5}\n")
    with pytest.raises(UsageError, match="'m' has no price"):
        promptgrid.run(unpriced, results_dir=tmp_path, max_cost=1, progress=False)
    assert not (tmp_path / "promptgrid.sqlite").exists()  # nothing written
