"""A hard budget: admission by worst case, settlement by real cost, a stop that never overspends,
and a resume with a higher cap that finishes the run."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import promptgrid
from promptgrid.api import Experiment
from promptgrid.cli import cli, main
from promptgrid.config import RunOptions, resolve
from promptgrid.engine.budget import Budget, charged_cost, vet, worst_cost, worst_tokens
from promptgrid.engine.limiter import EndpointLimiter
from promptgrid.engine.scheduler import Endpoint, Scheduler
from promptgrid.engine.storeio import StoreIO
from promptgrid.errors import BudgetExceeded, PromptgridWarning, SpecError, UsageError
from promptgrid.grid import expand
from promptgrid.pricing import Price, Pricing
from promptgrid.providers.base import Completion, Request
from promptgrid.spec.schema import RetryPolicy
from promptgrid.store import Owner, Store
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ------------------------------------------------------------------ usage no server can talk past


async def test_a_settled_cost_stays_within_its_reservation() -> None:
    budget = Budget(cap=1.0)
    for cost, counted in [(-1e9, 0.0), (math.nan, 0.25), (7.0, 0.25), (0.1, 0.1)]:
        spent = budget.spent
        budget.settle(await budget.admit(0.25), cost)
        assert budget.spent - spent == pytest.approx(counted), cost


PRICING = Pricing(overrides={"m": Price(input=1.0, output=2.0)})
MAX_TOKENS = 10


class Reporting:
    """Answers every request with the usage it is given (prompt, completion, cached)."""

    def __init__(self, prompt: Any, completion: Any, cached: Any = None, model: str = "m") -> None:
        self.usage = (prompt, completion, cached)
        self.model = model
        self.calls = 0

    async def complete(self, request: Request) -> Completion:
        self.calls += 1
        prompt, completion, cached = self.usage
        return Completion("ok", "stop", prompt, completion, cached, resolved_model=self.model)

    async def aclose(self) -> None:
        pass


async def budgeted(  # type: ignore[no-untyped-def]
    tmp_path: Path, provider: Reporting, cells: int, cap: float, pricing: Pricing = PRICING,
    model: str = "m",
):  # fmt: skip
    """Run ``cells`` cells (one at a time) on a priced endpoint under ``cap``: the store, the
    summary and the budget."""
    exp = Experiment(
        prompts={"p": "q{{ i }}"}, vars={"i": list(range(cells))},
        params={"model": model, "max_tokens": MAX_TOKENS}, provider="echo",
    )  # fmt: skip
    store = Store.in_dir(tmp_path)
    store.create_run("r1", exp.name, None, exp.to_dict(), exp.columns(), exp.total, {})
    io = StoreIO(store.path, Owner.me(), after=0)
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=1)
    budget = Budget(cap)
    scheduler = Scheduler(
        io, "r1", {"echo": Endpoint(provider, limiter, pricing)}, concurrency=1,
        retry=RetryPolicy(), budget=budget, heartbeat_s=None,
    )  # fmt: skip
    try:
        summary = await scheduler.execute(expand(resolve(exp, RunOptions(results_dir=tmp_path))))
    finally:
        io.close()
    return store, summary, budget


def worst_of_a_cell(pricing: Pricing = PRICING, model: str = "m") -> float:
    request = Request("echo", model, ({"role": "user", "content": "q0"},),
                      {"max_tokens": MAX_TOKENS})  # fmt: skip
    return worst_cost(pricing, request)


@pytest.mark.parametrize(
    "usage",
    [
        pytest.param((-(10**9), 3), id="negative"),
        pytest.param((5, math.nan), id="nan"),
        pytest.param((5, math.inf), id="infinite"),
        pytest.param(("n/a", 3), id="not-a-number"),
        pytest.param((5, 2.5), id="fractional"),
        pytest.param((None, None), id="missing"),
        pytest.param((5, None), id="half-missing"),
        pytest.param((5, MAX_TOKENS + 1), id="more-output-than-max-tokens"),
        pytest.param((10**12, 3), id="more-prompt-than-was-sent"),
        pytest.param((5, 3, 6), id="more-cached-than-prompt"),
    ],
)
async def test_unbelievable_usage_is_charged_its_worst_case(
    tmp_path: Path, usage: tuple[Any, ...]
) -> None:
    worst = worst_of_a_cell()
    provider = Reporting(*usage)
    store, summary, budget = await budgeted(tmp_path, provider, cells=20, cap=5.5 * worst)
    assert isinstance(summary.stopped_by, BudgetExceeded)
    assert provider.calls == 5  # five worst cases fit the cap, the sixth does not
    assert 0 < budget.spent <= budget.cap
    rows = store.db.execute(
        "SELECT a.prompt_tokens, a.completion_tokens, a.cached_tokens, r.cost_usd "
        "FROM results r JOIN responses a ON a.id = r.response_id"
    ).fetchall()
    assert len(rows) == 5 and summary.unbelievable_usage == 5
    for prompt, completion, cached, cost in rows:  # unknown usage, charged its worst case
        assert (prompt, completion, cached) == (None, None, None)
        assert cost == pytest.approx(worst)
    assert store.spend("r1") == pytest.approx(budget.spent)
    store.close()


async def test_believable_usage_is_charged_what_it_costs(tmp_path: Path) -> None:
    provider = Reporting(7, MAX_TOKENS, 2)
    store, summary, _ = await budgeted(tmp_path, provider, cells=3, cap=1.0)
    assert summary.stopped_by is None and summary.unbelievable_usage == 0
    rows = store.db.execute(
        "SELECT a.prompt_tokens, a.completion_tokens, r.cost_usd "
        "FROM results r JOIN responses a ON a.id = r.response_id"
    ).fetchall()
    assert rows == [(7, MAX_TOKENS, pytest.approx((7 * 1.0 + MAX_TOKENS * 2.0) / 1e6))] * 3
    store.close()


def test_the_bound_is_bytes_not_characters() -> None:
    # 100 characters of 2 bytes each: 160 prompt tokens is more than the characters allow (a
    # quick first check) and within the bytes (the bound itself).
    request = Request("e", "m", ({"role": "user", "content": "é" * 100},), {"max_tokens": 10})
    prompt_max, _ = worst_tokens(PRICING, request)
    assert prompt_max == 3 + 4 + 200 + len('{"max_tokens": 10}')
    for prompt, believed in [(160, True), (prompt_max, True), (prompt_max + 1, False)]:
        vetted, unbelievable = vet(PRICING, request, Completion("ok", "stop", prompt, 10))
        assert (vetted.prompt_tokens == prompt, unbelievable) == (believed, not believed)
        cost = charged_cost(PRICING, request, vetted)
        expected = (prompt * 1.0 + 10 * 2.0) / 1e6 if believed else worst_cost(PRICING, request)
        assert cost == pytest.approx(expected)


async def test_an_answer_naming_a_dearer_model_costs_at_most_its_reservation(
    tmp_path: Path,
) -> None:
    # The request's model is priced $0.15/$0.60, and the answer says o1 ($15/$60) answered.
    worst = worst_of_a_cell(Pricing(), "gpt-4o-mini")
    provider = Reporting(9, MAX_TOKENS, model="o1")
    store, _, budget = await budgeted(tmp_path, provider, cells=20, cap=5.5 * worst,
                                      pricing=Pricing(), model="gpt-4o-mini")  # fmt: skip
    assert provider.calls == 5 and budget.spent <= budget.cap
    costs = [cost for (cost,) in store.db.execute("SELECT cost_usd FROM results")]
    assert costs == [pytest.approx(worst)] * 5
    store.close()


def usage_experiment(write_yaml, server: FaultServer, cells: int) -> Path:  # type: ignore[no-untyped-def]
    return write_yaml(
        f"""\
        name: told
        provider: openai
        providers:
          openai: {{base_url: "{server.base_url}"}}
        prompts:
          p: "question {{{{ i }}}}"
        vars:
          i: [{", ".join(str(i) for i in range(cells))}]
        params: {{model: gpt-4o-mini, max_tokens: 50}}
        limits: {{max_concurrency: 2}}
        """
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "usage",
    [
        pytest.param({"prompt_tokens": -(10**9)}, id="negative"),
        pytest.param({"completion_tokens": 10**12}, id="inflated"),
    ],
)
def test_a_server_reporting_unbelievable_usage_cannot_spend_past_the_cap(
    write_yaml, tmp_path: Path, usage: dict[str, int]
) -> None:
    first = Request("openai", "gpt-4o-mini", ({"role": "user", "content": "question 0"},),
                    {"max_tokens": 50})  # fmt: skip
    cap = 3.5 * worst_cost(Pricing(), first)  # three calls at their worst case
    with FaultServer(usage=usage) as server:
        path = usage_experiment(write_yaml, server, 30)
        warned = pytest.warns(PromptgridWarning, match=r"\b3 answers had no believable usage")
        with warned, pytest.raises(BudgetExceeded):
            promptgrid.run(path, results_dir=tmp_path, progress=False, max_cost=cap)
        sent = server.stats()["requests"]
    df = promptgrid.load(results_dir=tmp_path)
    assert sent == 3 and len(df) == 3
    assert df["prompt_tokens"].isna().all() and df["completion_tokens"].isna().all()
    assert (df["cost_usd"] > 0).all() and 0 < df["cost_usd"].sum() <= cap


# ------------------------------------------------------------------ caps and prices are checked


@pytest.mark.parametrize("cap", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_max_cost_must_be_a_finite_amount_above_zero(animals: Path, tmp_path: Path,
                                                     cap: float) -> None:  # fmt: skip
    with pytest.raises(UsageError, match="max_cost must be a finite amount of USD above 0"):
        promptgrid.run(animals, results_dir=tmp_path, progress=False, max_cost=cap)
    with pytest.raises(UsageError, match="max_cost"):
        promptgrid.plan(animals, max_cost=cap)
    assert not (tmp_path / "promptgrid.sqlite").exists()  # nothing written


@pytest.mark.parametrize("cap", ["nan", "inf", "-inf", "0", "-1", "1e400"])
def test_the_cli_refuses_a_max_cost_that_is_no_cap(
    animals: Path, tmp_path: Path, cap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", str(animals), "--results-dir", str(tmp_path), f"--max-cost={cap}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--max-cost" in err and "Traceback" not in err
    assert not (tmp_path / "promptgrid.sqlite").exists()


@pytest.mark.parametrize(
    ("fragment", "path", "line"),
    [
        pytest.param("budget: {max_cost_usd: .nan}", "budget.max_cost_usd", 4, id="budget-nan"),
        pytest.param("budget: {max_cost_usd: .inf}", "budget.max_cost_usd", 4, id="budget-inf"),
        pytest.param("budget: {max_cost_usd: 0}", "budget.max_cost_usd", 4, id="budget-zero"),
        pytest.param(
            "pricing:\n  m: {input: .inf, output: 1}", "pricing.m.input", 5, id="price-inf"
        ),
        pytest.param(
            "pricing:\n  m: {input: 1, output: .nan}", "pricing.m.output", 5, id="price-nan"
        ),
        pytest.param(
            "pricing:\n  m: {input: 1, output: 1, cached_input: -1}",
            "pricing.m.cached_input",
            5,
            id="price-negative",
        ),
        pytest.param(
            "pricing:\n  m: {input: 1, output: 1, batch_input: .inf}",
            "pricing.m.batch_input",
            5,
            id="batch-price-inf",
        ),
        pytest.param(
            "providers:\n  openai:\n    pricing:\n      m: {input: 1, output: -.inf}",
            "providers.openai.pricing.m.output",
            7,
            id="provider-price",
        ),
    ],
)
def test_caps_and_prices_must_be_finite(write_yaml, fragment: str, path: str, line: int) -> None:
    file = write_yaml(
        "provider: openai\nprompts: {p: hi}\nparams: {model: m, max_tokens: 5}\n" + fragment
    )
    with pytest.raises(SpecError) as caught:
        Experiment.from_yaml(file)
    found = {(p.path, p.line) for p in caught.value.problems}
    assert (path, line) in found, str(caught.value)
    result = CliRunner().invoke(cli, ["validate", str(file)])
    assert result.exit_code == 2 and f":{line} {path}" in result.output
