"""The plan's numbers against a grid whose sizes, prompts and prices are known."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import promptgrid
from promptgrid import tokens
from promptgrid.pricing import Price
from promptgrid.spec import Experiment
from promptgrid.tokens import estimate_prompt_tokens, worst_params_tokens, worst_prompt_tokens

PRICE = Price(input=2.0, output=8.0)  # USD per 1M tokens, set in the file below


def grid(**fields: object) -> Experiment:
    base: dict[str, object] = {
        "name": "sizes",
        "provider": "openai",
        "providers": {"openai": {"base_url": "http://127.0.0.1:9/v1"}},
        "prompts": {"short": "Name a {{ animal }}.", "long": "Name three famous {{ animal }}s."},
        "vars": {"animal": ["cat", "dog", "horse"]},
        "params": {"model": "priced", "max_tokens": [10, 30], "n": 2},
        "repeats": 2,
        "pricing": {"priced": {"input": 2.0, "output": 8.0}},
        "limits": {"rpm": 60, "tpm": 100_000},
    }
    return Experiment(**{**base, **fields})


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_counts_tokens_cost_and_time_of_a_known_grid(tmp_path: Path) -> None:
    plan = promptgrid.plan(grid(), results_dir=tmp_path)
    # 2 prompts x 3 animals x 2 max_tokens x 2 repeats
    assert plan.axes == {"prompt": 2, "animal": 3, "max_tokens": 2, "repeat": 2}
    assert (plan.total, plan.cached, plan.duplicates, plan.to_send) == (24, 0, 0, 24)
    texts = [f"Name a {a}." for a in ("cat", "dog", "horse")]
    texts += [f"Name three famous {a}s." for a in ("cat", "dog", "horse")]
    per_block = [estimate_prompt_tokens(messages(t)) for t in texts]
    worst_block = [worst_prompt_tokens(messages(t)) for t in texts]
    per_cell = 4  # 2 max_tokens values x 2 repeats for each block
    assert plan.prompt_tokens == round(sum(per_block) * per_cell)
    assert plan.output_tokens_max == 6 * 2 * (10 + 30) * 2  # blocks x repeats x limits x n
    assert plan.output_tokens_expected == plan.output_tokens_max / 2  # nothing stored yet
    # The worst case also counts each call's parameters at a token per byte, as the budget does.
    params = 6 * 2 * sum(worst_params_tokens({"max_tokens": m, "n": 2}) for m in (10, 30))
    worst = PRICE.cost(sum(worst_block) * per_cell + params, plan.output_tokens_max)
    expected = PRICE.cost(sum(per_block) * per_cell, plan.output_tokens_expected)
    assert plan.cost_worst_usd == pytest.approx(worst, rel=1e-6)
    assert plan.cost_expected_usd == pytest.approx(expected, rel=1e-6)
    # 24 calls at 60/min is 24 s; tokens charged up front are far under 100,000/min.
    assert plan.seconds == pytest.approx(24.0) and plan.binding == "openai rpm (60/min)"
    assert plan.tokenizer.startswith("estimate")
    text = str(plan)
    assert "cost worst case" in text and "bound by openai rpm" in text


def test_tpm_binds_when_tokens_are_the_scarce_part(tmp_path: Path) -> None:
    plan = promptgrid.plan(grid(limits={"rpm": 100_000, "tpm": 200}), results_dir=tmp_path)
    assert plan.binding == "openai tpm (200/min)" and plan.seconds is not None
    assert plan.seconds > 60


def test_a_budget_is_checked_against_the_worst_case(tmp_path: Path) -> None:
    low = promptgrid.plan(grid(), results_dir=tmp_path, max_cost=0.000001)
    high = promptgrid.plan(grid(budget={"max_cost_usd": 10}), results_dir=tmp_path)
    assert (low.fits_budget, high.fits_budget) == (False, True)
    assert "may stop the run" in str(low) and high.max_cost_usd == 10


def test_stored_answers_set_the_expected_length_and_the_cache(tmp_path: Path) -> None:
    exp = grid(provider="echo", providers={})
    promptgrid.run(exp, results_dir=tmp_path, progress=False)  # echo answers, stored
    again = grid(provider="echo", providers={}, repeats=3)  # one more repeat: 12 new cells
    plan = promptgrid.plan(again, results_dir=tmp_path)
    assert (plan.total, plan.cached, plan.to_send) == (36, 24, 12)
    assert plan.cost_worst_usd == 0.0  # echo is free
    assert any("stored answers" in basis for basis in plan.expected_basis)


def test_unknown_price_leaves_cost_unknown_and_says_so(tmp_path: Path) -> None:
    plan = promptgrid.plan(grid(pricing={}), results_dir=tmp_path)
    assert plan.cost_expected_usd is None and plan.cost_worst_usd is None
    assert plan.unpriced == ["priced"] and "no price for priced" in str(plan)


def test_a_tokenizer_on_disk_counts_instead_of_estimating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "_o200k", lambda: lambda text: text.split())
    plan = promptgrid.plan(grid(), results_dir=tmp_path)
    assert plan.tokenizer == "counted with tiktoken o200k_base"
    words = sum(len(t.split()) for t in ["Name a cat.", "Name a dog.", "Name a horse."])
    words += 3 * 4  # "Name three famous cats." and the others: 4 words each
    assert plan.prompt_tokens == (words + 6 * (3 + 4)) * 4  # 3 priming + 4 per message


def test_large_grids_are_sampled_and_say_so(tmp_path: Path) -> None:
    many = grid(vars={"animal": [f"a{i}" for i in range(3000)]})
    plan = promptgrid.plan(many, results_dir=tmp_path)
    assert plan.sampled == 2000 and plan.prompts == 6000
    assert "a sample of 2,000 of 6,000 prompts" in str(plan)


@pytest.mark.slow
def test_plan_json_for_scripts(tmp_path: Path, write_yaml) -> None:
    path = write_yaml(
        "provider: echo\nprompts: {p: 'hi {{ x }}'}\nvars: {x: [1, 2]}\n"
        "params: {model: gpt-4o-mini, max_tokens: 5}\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "from promptgrid.cli import main; main()", "plan", str(path),
         "--json", "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["total"] == 2 and data["to_send"] == 2 and data["cost_worst_usd"] == 0.0
    assert data["output_tokens_max"] == 10 and data["fits_budget"] is None


@pytest.mark.slow
def test_plan_names_every_host_and_where_its_key_comes_from(
    tmp_path: Path, write_yaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_scores.py").write_text("def exact(answer, **_):\n    return 1.0\n")
    path = write_yaml(
        """\
        provider: openai
        providers:
          openai: {models: [gpt-4o-mini]}
          aws:
            base_url: "http://user:hunter22pw@llm.test/v1?api-key=topsecret123"
            api_key_env: AWS_SECRET_ACCESS_KEY
            models: [llama]
          offline: {type: echo, models: [fake]}
        prompts: {p: hi}
        params: {model: [gpt-4o-mini, llama, fake], max_tokens: 5}
        pricing: {llama: {input: 0, output: 0}, fake: {input: 0, output: 0}}
        scores:
          mine: {python: "my_scores:exact"}
        """
    )
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    command = [sys.executable, "-c", "from promptgrid.cli import main; main()", "plan",
               str(path), "--results-dir", str(tmp_path / "r")]  # fmt: skip
    text = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    shown = text.stdout
    assert "hunter22pw" not in shown + text.stderr and "topsecret123" not in shown + text.stderr
    assert shown.splitlines()[-5:] == [
        "  calls go to:",
        "    aws http://***@llm.test/v1?api-key=*** (key from $AWS_SECRET_ACCESS_KEY)",
        "    offline echo (offline: nothing is sent)",
        "    openai https://api.openai.com/v1 (key from $OPENAI_API_KEY)",
        "  python scorers run as code here: my_scores:exact",
    ]
    data = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True,
                                     timeout=60).stdout)  # fmt: skip
    assert data["hosts"] == [
        {"provider": "aws", "url": "http://***@llm.test/v1?api-key=***",
         "key_env": "AWS_SECRET_ACCESS_KEY", "key_required": True},
        {"provider": "offline", "url": None, "key_env": None, "key_required": False},
        {"provider": "openai", "url": "https://api.openai.com/v1", "key_env": "OPENAI_API_KEY",
         "key_required": True},
    ]  # fmt: skip
    assert data["python_scorers"] == ["my_scores:exact"]
