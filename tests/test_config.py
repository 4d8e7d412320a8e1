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


# --------------------------------------------------------------------------- URL credentials

SECRET_URL = "http://user:hunter22pw@llm.test:8000/v1?api-key=topsecret123&api-version=2024"
PUBLIC_URL = "http://***@llm.test:8000/v1?api-key=***&api-version=2024"


def with_url(url: str) -> Experiment:
    local = {"base_url": url, "api_key_env": "LOCAL_KEY"}
    return Experiment(prompts={"p": "hi"}, params={"model": "m"}, provider="local",
                      providers={"local": local})  # fmt: skip


def test_credentials_in_a_base_url_are_sent_never_recorded(tmp_path: Path) -> None:
    config = resolve(with_url(SECRET_URL), RunOptions(results_dir=tmp_path))
    endpoint = config.endpoints["local"]
    assert endpoint.endpoint_id == PUBLIC_URL  # hashed, recorded, shown
    assert endpoint.base_url == SECRET_URL  # called
    record = config.record()
    assert "hunter22pw" not in repr(record) and "topsecret123" not in repr(record)
    # A resume reads the recorded (public) URL and calls the file's, credentials and all.
    again = resolve(with_url(SECRET_URL), RunOptions(results_dir=tmp_path), recorded=record)
    assert again.endpoints["local"].base_url == SECRET_URL
    assert again.endpoints["local"].endpoint_id == PUBLIC_URL


def test_a_base_url_option_with_credentials_is_recorded_without_them(tmp_path: Path) -> None:
    options = RunOptions(results_dir=tmp_path, base_url=SECRET_URL)
    config = resolve(with_url("http://other.test/v1"), options)
    assert config.endpoints["local"].base_url == SECRET_URL
    record = config.record()
    assert "hunter22pw" not in repr(record) and "topsecret123" not in repr(record)
    again = resolve(with_url("http://other.test/v1"), options, recorded=record)
    assert again.endpoints["local"].base_url == SECRET_URL
    # Without the credentials at hand, a resume cannot call: it says so before sending anything.
    lost = resolve(with_url("http://other.test/v1"), RunOptions(results_dir=tmp_path),
                   recorded=record)  # fmt: skip
    with pytest.raises(UsageError, match=r"credentials .* not recorded"):
        lost.check_keys()
    # Another URL is refused, and the refusal shows neither URL's credentials.
    other = RunOptions(results_dir=tmp_path, base_url="http://me:hunter33pw@third.test/v1")
    with pytest.raises(UsageError, match="this run was made with --base-url") as caught:
        resolve(with_url("http://other.test/v1"), other, recorded=record)
    assert "hunter" not in str(caught.value) and "topsecret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "public"),
    [
        pytest.param("https://api.openai.com/v1", "https://api.openai.com/v1", id="plain"),
        pytest.param("http://u:p@h/v1", "http://***@h/v1", id="user-password"),
        pytest.param("http://tok@h/v1", "http://***@h/v1", id="token-as-user"),
        pytest.param("http://h/v1?key=abc&x=1", "http://h/v1?key=***&x=1", id="query-key"),
        pytest.param("http://h/v1?access_token=a&sig=b", "http://h/v1?access_token=***&sig=***",
                     id="query-token-sig"),
        pytest.param("http://h/v1?api-version=2024-10-21", "http://h/v1?api-version=2024-10-21",
                     id="azure-version-kept"),
    ],
)  # fmt: skip
def test_public_url(url: str, public: str) -> None:
    from promptgrid.credentials import public_url

    assert public_url(url) == public
