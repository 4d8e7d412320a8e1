"""Vendor presets: what they fill in, what they refuse, and how the configuration resolves them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promptgrid.config import RunOptions, resolve
from promptgrid.errors import SpecError
from promptgrid.presets import PRESETS
from promptgrid.spec import Experiment

ISSUE_VENDORS = {"groq", "anthropic", "gemini", "together", "mistral", "openrouter", "ollama",
                 "vllm", "lmstudio", "azure"}  # fmt: skip


def experiment(provider: dict[str, Any], **params: Any) -> Experiment:
    return Experiment(
        provider="x",
        providers={"x": {"models": ["m"], **provider}},
        prompts={"p": "hi"},
        params={"model": "m", **params},
    )


def test_every_preset_cites_the_vendor_doc_it_follows() -> None:
    assert set(PRESETS) == ISSUE_VENDORS
    for name, preset in PRESETS.items():
        assert preset.doc.startswith("https://"), name
        assert preset.apis <= {"chat", "responses"} and "chat" in preset.apis
        assert (preset.base_url is None) == (name == "azure")


@pytest.mark.parametrize("name", sorted(ISSUE_VENDORS - {"azure"}))
def test_a_preset_fills_in_the_url_and_the_key_variable(name: str) -> None:
    endpoint = resolve(experiment({"preset": name}), RunOptions()).endpoints["x"]
    preset = PRESETS[name]
    assert endpoint.base_url == preset.base_url and endpoint.api_key_env == preset.key_env
    assert endpoint.key_required == (preset.key_env is not None)


def test_the_file_overrides_a_preset() -> None:
    exp = experiment({"preset": "ollama", "base_url": "http://gpu:11434/v1", "api_key_env": "K"})
    endpoint = resolve(exp, RunOptions()).endpoints["x"]
    assert endpoint.base_url == "http://gpu:11434/v1" and endpoint.api_key_env == "K"


def test_a_local_preset_never_reads_the_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-ollama")
    endpoint = resolve(experiment({"preset": "ollama"}), RunOptions()).endpoints["x"]
    assert endpoint.api_key() is None


def test_a_misspelt_preset_gets_a_suggestion() -> None:
    with pytest.raises(SpecError, match=r"providers.x.preset: unknown preset 'grok'") as caught:
        experiment({"preset": "grok"})
    assert "did you mean 'groq'?" in str(caught.value)


@pytest.mark.parametrize(
    ("preset", "params", "says"),
    [
        ("groq", {"logprobs": True}, "Groq does not take 'logprobs'"),
        ("groq", {"n": 2}, "Groq does not take 'n'"),
        ("anthropic", {"seed": 1}, "Anthropic does not take 'seed'"),
        ("anthropic", {"response_format": {"type": "json_object"}}, "'response_format'"),
        ("mistral", {"seed": 3}, "random_seed"),
        ("ollama", {"n": [1, 4]}, "params.n[1]: Ollama does not take 'n'"),
    ],
)
def test_a_parameter_the_vendor_refuses_is_a_validation_error(
    preset: str, params: dict[str, Any], says: str
) -> None:
    with pytest.raises(SpecError, match="does not take") as caught:
        experiment({"preset": preset}, **params)
    assert says in str(caught.value) and PRESETS[preset].doc in str(caught.value)


def test_n_of_one_is_fine_for_a_vendor_that_refuses_more() -> None:
    experiment({"preset": "groq"}, n=1, temperature=0)


def test_a_chat_only_vendor_refuses_the_responses_api() -> None:
    with pytest.raises(SpecError, match="Together AI serves Chat Completions only"):
        experiment({"preset": "together", "api": "responses"})
    experiment({"preset": "groq", "api": "responses"})  # Groq serves both


def test_azure_needs_its_resource_and_maps_deployments() -> None:
    with pytest.raises(SpecError, match="the azure preset needs base_url"):
        experiment({"preset": "azure"})
    with pytest.raises(SpecError, match="api_version is an Azure setting"):
        experiment({"preset": "groq", "api_version": "2024-10-21"})
    exp = experiment({"preset": "azure", "base_url": "https://res.openai.azure.com/",
                      "api_version": "2024-10-21", "deployments": {"m": "dep"}})  # fmt: skip
    endpoint = resolve(exp, RunOptions()).endpoints["x"]
    assert endpoint.endpoint_id == "https://res.openai.azure.com?api-version=2024-10-21"
    assert endpoint.base_url == "https://res.openai.azure.com"
    assert endpoint.model_sent("m") == "dep" and endpoint.model_sent("other") == "other"
    assert endpoint.api_key_env == "AZURE_OPENAI_API_KEY" and endpoint.key_required
    v1 = experiment({"preset": "azure", "base_url": "https://res.openai.azure.com"})
    assert resolve(v1, RunOptions()).endpoints["x"].base_url == (
        "https://res.openai.azure.com/openai/v1"
    )


def test_sending_the_grid_elsewhere_checks_its_parameters_there(
    write_yaml: Callable[[str, str], Path],
) -> None:
    path = write_yaml(
        """\
        provider: echo
        providers:
          fast: {preset: groq}
        prompts: {p: hi}
        params: {model: m, logprobs: true}
        """
    )
    exp = Experiment.from_yaml(path)  # fine on echo
    with pytest.raises(SpecError, match=r"exp.yaml:5 params.logprobs: Groq does not take"):
        resolve(exp, RunOptions(provider="fast"))
