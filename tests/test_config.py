"""The resolved run configuration: decided once, recorded, reused by resume and retry."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptgrid.config import DEFAULT_BASE_URL, RunOptions, resolve
from promptgrid.errors import UsageError
from promptgrid.spec import Experiment


def two_endpoints(**fields) -> Experiment:
    return Experiment(
        prompts={"p": "hi"},
        params={"model": ["gpt-4o-mini", "llama"]},
        provider="openai",
        limits={"rpm": 100, "timeout_s": 30},
        providers={
            "local": {
                "base_url": "http://127.0.0.1:11434/v1/",
                "models": ["llama"],
                "limits": {"max_concurrency": 4},
            }
        },
        **fields,
    )


def test_endpoints_limits_and_routes_are_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    config = resolve(two_endpoints(), RunOptions(rpm=50, formats=("csv",)))
    assert config.routes == {"gpt-4o-mini": "openai", "llama": "local"}
    openai, local = config.endpoints["openai"], config.endpoints["local"]
    assert openai.endpoint_id == DEFAULT_BASE_URL and openai.key_required
    assert local.endpoint_id == "http://127.0.0.1:11434/v1" and not local.key_required
    # The override goes to the target (default) provider only; the file's limits apply there.
    assert (openai.limits.rpm, openai.limits.timeout_s) == (50, 30)
    assert (local.limits.rpm, local.limits.max_concurrency) == (None, 4)
    assert config.formats == ("csv",) and config.use_cache


def test_provider_override_sends_everything_to_one_endpoint() -> None:
    config = resolve(two_endpoints(), RunOptions(provider="echo"))
    assert set(config.routes.values()) == {"echo"} and list(config.endpoints) == ["echo"]
    assert config.endpoints["echo"].free


def test_unknown_provider_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown provider 'nope'"):
        resolve(two_endpoints(), RunOptions(provider="nope"))


def test_record_pins_the_base_url_against_a_changed_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://first.test/v1")
    first = resolve(two_endpoints(), RunOptions(rpm=50))
    record = first.record()
    assert record["endpoints"]["openai"] == "http://first.test/v1" and record["rpm"] == 50
    monkeypatch.setenv("OPENAI_BASE_URL", "http://second.test/v1")
    again = resolve(two_endpoints(), RunOptions(), recorded=record)
    assert again.endpoints["openai"].endpoint_id == "http://first.test/v1"
    assert again.endpoints["openai"].limits.rpm == 50  # the recorded override stands


def test_resume_may_change_limits_and_formats_but_not_where_calls_go() -> None:
    record = resolve(
        two_endpoints(), RunOptions(base_url="http://a.test/v1", formats=("csv",))
    ).record()
    changed = resolve(two_endpoints(), RunOptions(tpm=999, formats=("jsonl",)), recorded=record)
    assert changed.endpoints["openai"].limits.tpm == 999 and changed.formats == ("jsonl",)
    assert changed.endpoints["openai"].endpoint_id == "http://a.test/v1"
    same = resolve(two_endpoints(), RunOptions(base_url="http://a.test/v1"), recorded=record)
    assert same.endpoints["openai"].endpoint_id == "http://a.test/v1"
    with pytest.raises(UsageError, match="--base-url") as caught:
        resolve(two_endpoints(), RunOptions(base_url="http://b.test/v1"), recorded=record)
    assert "http://a.test/v1" in str(caught.value) and "leave --base-url out" in str(caught.value)
    with pytest.raises(UsageError, match="--provider"):
        resolve(two_endpoints(), RunOptions(provider="echo"), recorded=record)
    with pytest.raises(UsageError, match="--no-cache"):
        resolve(two_endpoints(), RunOptions(use_cache=False), recorded=record)


def test_a_required_key_is_checked_with_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    config = resolve(two_endpoints(), RunOptions())
    with pytest.raises(UsageError) as caught:
        config.check_keys()
    message = str(caught.value)
    assert "OPENAI_API_KEY" in message and "--provider echo" in message
    # A local server needs no key; an explicit api_key_env does.
    assert config.endpoints["local"].api_key() is None
    custom = Experiment(
        prompts={"p": "hi"},
        params={"model": "m"},
        provider="azure",
        providers={"azure": {"base_url": "http://az.test/v1", "api_key_env": "AZURE_KEY"}},
    )
    monkeypatch.delenv("AZURE_KEY", raising=False)
    with pytest.raises(UsageError, match="AZURE_KEY"):
        resolve(custom, RunOptions()).check_keys()
    monkeypatch.setenv("AZURE_KEY", "sk-az")
    assert resolve(custom, RunOptions()).endpoints["azure"].api_key() == "sk-az"


def test_the_record_never_holds_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-never-stored")
    record = resolve(two_endpoints(), RunOptions(results_dir=tmp_path)).record()
    assert "sk-secret" not in repr(record)
