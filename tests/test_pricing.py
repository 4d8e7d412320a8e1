"""Prices: the dated table, the file's own prices, free endpoints, cached and batch tokens, and
the warning for a model without a price."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import promptgrid
from promptgrid.config import RunOptions, resolve
from promptgrid.errors import PromptgridWarning
from promptgrid.pricing import AS_OF, FREE, TABLE, Price, Pricing, table_price
from promptgrid.spec import Experiment
from promptgrid.tokens import worst_prompt_tokens


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param("gpt-4o-mini", TABLE["gpt-4o-mini"], id="exact"),
        pytest.param("gpt-4o-mini-2024-07-18", TABLE["gpt-4o-mini"], id="dated-snapshot"),
        pytest.param("gpt-4o-2024-08-06", TABLE["gpt-4o"], id="snapshot-of-the-shorter-name"),
        pytest.param("gpt-5.1", None, id="a-newer-model-is-not-gpt-5"),
        pytest.param("gpt-4o-mini-tts", None, id="another-model-with-the-prefix"),
        pytest.param("llama3.2", None, id="unknown"),
        pytest.param(None, None, id="none"),
    ],
)
def test_table_prices_models_and_their_snapshots_only(model: str | None, expected: object) -> None:
    assert table_price(model) == expected


def test_the_table_is_dated() -> None:
    assert AS_OF[:2] == "20" and len(AS_OF) == 10


def test_cached_input_is_priced_as_cached_and_batch_halves() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    # 1,000 prompt tokens of which 400 cached, 100 output tokens
    assert price.cost(1000, 100, cached=400) == pytest.approx((600 * 2 + 400 * 0.5 + 100 * 8) / 1e6)
    assert price.cost(1000, 100, batch=True) == pytest.approx((1000 * 1 + 100 * 4) / 1e6)
    no_cache_price = Price(input=2.0, output=8.0)
    assert no_cache_price.cost(1000, 0, cached=400) == pytest.approx(2000 / 1e6)
    assert price.cost(10, 0, cached=99) == pytest.approx(10 * 0.5 / 1e6)  # never more cached


def test_pricing_file_prices_over_the_table_and_free() -> None:
    own = Price(input=9.0, output=9.0)
    pricing = Pricing(overrides={"gpt-4o-mini": own, "llama3": Price(0.1, 0.2)})
    assert pricing.price("gpt-4o-mini") is own
    assert pricing.price("gpt-4o") == TABLE["gpt-4o"]
    assert pricing.price("my-alias", resolved="llama3") == Price(0.1, 0.2)
    assert pricing.price("nothing") is None
    assert Pricing(free=True).price("anything") == FREE
    assert pricing.cost("nothing", resolved=None, prompt=10, completion=10, cached=0) is None
    assert pricing.cost("llama3", resolved=None, prompt=None, completion=None, cached=None) is None
    free = Pricing(free=True)
    assert free.cost("x", resolved=None, prompt=None, completion=None, cached=None) == 0.0


def test_worst_prompt_tokens_bound_any_text() -> None:
    # One token per byte at most: multi-byte text is the case a 4-characters rule gets wrong.
    messages = [{"role": "user", "content": "日本語のテキスト" * 10}]
    text_bytes = len(messages[0]["content"].encode())
    assert worst_prompt_tokens(messages) == 3 + 4 + text_bytes


def experiment(**fields: object) -> Experiment:
    base: dict[str, object] = {
        "prompts": {"p": "hi"},
        "params": {"model": ["gpt-4o-mini", "llama3", "house-model"]},
        "provider": "openai",
        "providers": {
            "local": {"base_url": "http://127.0.0.1:9/v1", "models": ["llama3"],
                      "pricing": "free"},
        },
    }  # fmt: skip
    return Experiment(**{**base, **fields})


def test_config_prices_each_endpoint_and_names_the_unpriced() -> None:
    config = resolve(experiment(), RunOptions())
    assert config.endpoints["local"].free
    assert config.unpriced == [("house-model", "openai")]
    (warning,) = config.warnings
    assert "house-model" in warning and "pricing:" in warning and "input:" in warning
    priced = resolve(experiment(pricing={"house-model": {"input": 1, "output": 2}}), RunOptions())
    assert priced.unpriced == [] and priced.warnings == []
    echo = resolve(experiment(), RunOptions(provider="echo"))
    assert echo.unpriced == []  # everything is free offline


def test_plan_and_run_warn_once_about_an_unpriced_model(tmp_path: Path) -> None:
    exp = Experiment(prompts={"p": "hi"}, params={"model": "house-model"}, provider="openai",
                     providers={"openai": {"base_url": "http://127.0.0.1:9/v1"}})  # fmt: skip
    with pytest.warns(PromptgridWarning, match="no price for model 'house-model'") as caught:
        plan = promptgrid.plan(exp, results_dir=tmp_path)
    assert len(caught) == 1
    assert plan.cost_expected_usd is None and plan.unpriced == ["house-model"]


def test_no_warning_when_everything_is_priced(tmp_path: Path) -> None:
    exp = Experiment(prompts={"p": "hi"}, params={"model": "gpt-4o-mini"}, provider="echo")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        promptgrid.plan(exp, results_dir=tmp_path)
