"""Every kind of request, end to end: promptgrid -> the real openai SDK -> loopback -> the fault
server, and back into the store and the DataFrame.

Each test runs one kind (tool calls, several choices, images, the Responses API and reasoning,
structured outputs, streams, logprobs, refusals, presets and Azure) and checks two things: what
the server received is what the experiment asked for, and everything the server answered is in
the store and the table. The server's answers are :mod:`promptgrid.synthetic`'s, so each
expected value is computed, not copied. Nothing sleeps; the only waits are retry waits of a few
milliseconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from aiohttp import web

import promptgrid
import promptgrid.engine.attempts
from promptgrid import synthetic
from promptgrid.errors import SpecError, UsageError
from promptgrid.testing import FaultServer
from promptgrid.tokens import estimate_text_tokens

KEY = "sk-test-request-kinds"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
]
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "legs": {"type": "integer"}},
    "required": ["name", "legs"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "animal", "schema": SCHEMA, "strict": True},
}


class Recorder(FaultServer):
    """A fault server that keeps every request it receives: path, query, headers, JSON body."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[dict[str, Any]] = []
        handle = self._core._handle

        async def recording(request: web.Request, api: str) -> web.StreamResponse:
            body = json.loads(await request.read())  # aiohttp caches the body for the handler
            self.seen.append(
                {
                    "path": request.path,
                    "query": dict(request.query),
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
            return await handle(request, api)

        self._core._handle = recording  # type: ignore[method-assign]

    def bodies(self) -> list[dict[str, Any]]:
        return [s["body"] for s in self.seen]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(promptgrid.engine.attempts, "BACKOFF_MULTIPLIER_S", 0.001)


@pytest.fixture
def server() -> Iterator[Recorder]:
    with Recorder(retry_after_s=0.01) as s:
        yield s


def write(folder: Path, name: str = "kinds", **fields: Any) -> Path:
    """An experiment file in ``folder`` (so image paths are relative to it)."""
    fields.setdefault("provider", "openai")
    fields.setdefault("retry", {"max_attempts": 3, "max_wait_s": 0.01})
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields}, sort_keys=False), encoding="utf-8")
    return path


def run(path: Path, server: FaultServer, results: Path, **options: Any) -> pd.DataFrame:
    return promptgrid.run(
        path, base_url=server.base_url, results_dir=results, progress=False, **options
    )


def stored(results: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of a query on the run's store (read-only)."""
    db = sqlite3.connect(f"file:{results / 'promptgrid.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def missing(value: Any) -> bool:
    """A null cell (None, NaN or NA, as pandas shows it)."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def loads(value: Any) -> Any:
    return None if missing(value) else json.loads(value)


# --------------------------------------------------------------------------- tool calls


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.slow
def test_tool_calls_are_kept(api: str, stream: bool, server: Recorder, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        api=api,
        prompts={"p": "Weather in {{ city }}?"},
        vars={"city": ["Paris", "Oslo"]},
        params={
            "model": "gpt-4o-mini",
            "tools": TOOLS,
            "tool_choice": "required",
            "stream": stream,
        },
    )
    df = run(path, server, tmp_path / "r")

    sent = server.bodies()[0]
    if api == "chat":
        assert sent["tools"] == TOOLS and sent["tool_choice"] == "required"
    else:  # the Responses API takes function tools flat
        assert sent["tools"] == [{"type": "function", **TOOLS[0]["function"]}]
    for _, row in df.iterrows():
        last = f"Weather in {row['city']}?"
        name, arguments = synthetic.tool_call(TOOLS, "required", last) or ("", "")
        [call] = loads(row["tool_calls"])
        assert (call["type"], call["name"], call["arguments"]) == ("function", name, arguments)
        assert call["id"].startswith("call_")
        assert json.loads(call["arguments"]) == {"city": f"echo: {last}", "days": 0}
        assert row["finish_reason"] == "tool_calls" and missing(row["response"])
        assert row["status"] == "ok" and row["completion_tokens"] == estimate_text_tokens(
            name + arguments
        )
    in_store = stored(tmp_path / "r", "SELECT tool_calls_json FROM responses ORDER BY id")
    assert sorted(t for (t,) in in_store) == sorted(df["tool_calls"])


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.slow
def test_a_conversation_with_tool_results_is_sent_whole(
    api: str, server: Recorder, tmp_path: Path
) -> None:
    # templated arguments are rendered like the rest of the request, never sent half-rendered
    call = {"id": "call_9", "function": {"name": "get_weather",
                                         "arguments": {"city": "{{ city }}"}}}  # fmt: skip
    path = write(
        tmp_path,
        api=api,
        prompts={
            "followup": [
                {"role": "developer", "content": "Use the tools, then answer in one line."},
                {"role": "user", "content": "Weather in {{ city }}?"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_9", "content": '{"celsius": 21}'},
            ]
        },
        vars={"city": ["Paris"]},
        params={"model": "gpt-4o-mini", "tools": TOOLS},
    )
    df = run(path, server, tmp_path / "r")

    [sent] = server.bodies()
    arguments = json.dumps({"city": "Paris"})
    if api == "chat":
        assert sent["messages"] == [
            {"role": "developer", "content": "Use the tools, then answer in one line."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_9", "type": "function",
                 "function": {"name": "get_weather", "arguments": arguments}}]},
            {"role": "tool", "content": '{"celsius": 21}', "tool_call_id": "call_9"},
        ]  # fmt: skip
    else:
        assert sent["input"] == [
            {"role": "developer", "content": "Use the tools, then answer in one line."},
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_9", "name": "get_weather",
             "arguments": arguments},
            {"type": "function_call_output", "call_id": "call_9", "output": '{"celsius": 21}'},
        ]  # fmt: skip
    # tool_choice is auto: the model answers in text, and the table shows what was sent.
    assert list(df["response"]) == ["echo: Weather in Paris?"] and df["tool_calls"].isna().all()
    shown = json.loads(df["messages"][0])  # the table shows the request that was sent
    assert [m["role"] for m in shown] == ["developer", "user", "assistant", "tool"]
    assert shown[2]["tool_calls"][0]["function"]["arguments"] == arguments


@pytest.mark.slow
def test_a_scripted_tool_call_under_tool_choice_auto(server: Recorder, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        prompts={"p": "Say {{ w }}"},
        vars={"w": ["a", "b"]},
        params={"model": "gpt-4o-mini", "tools": TOOLS},
    )
    server.script_for("Say b", ["tool_call"])
    df = run(path, server, tmp_path / "r").set_index("w")
    assert df.loc["a", "response"] == "echo: Say a" and missing(df.loc["a", "tool_calls"])
    assert loads(df.loc["b", "tool_calls"])[0]["name"] == "get_weather"
    assert df.loc["b", "finish_reason"] == "tool_calls"


# --------------------------------------------------------------------------- several choices


@pytest.mark.slow
def test_several_choices_are_rows_with_usage_once(server: Recorder, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        prompts={"p": "Say {{ w }}"},
        vars={"w": ["a", "b"]},
        params={"model": "gpt-4o-mini", "n": 3, "max_tokens": 20},
    )
    df = run(path, server, tmp_path / "r")

    assert len(server.seen) == 2 and server.bodies()[0]["n"] == 3
    assert list(df["w"]) == ["a"] * 3 + ["b"] * 3 and list(df["choice"]) == [0, 1, 2] * 2
    texts = [synthetic.echo_text(f"Say {w}", i) for w in "ab" for i in range(3)]
    assert list(df["response"]) == texts and (df["finish_reason"] == "stop").all()
    first = df[df["choice"] == 0]
    others = df[df["choice"] > 0]
    # Usage and cost are the request's: on its first row only, so sums are right.
    assert list(first["completion_tokens"]) == [
        sum(estimate_text_tokens(t) for t in texts[:3]),
        sum(estimate_text_tokens(t) for t in texts[3:]),
    ]
    assert others["prompt_tokens"].isna().all() and others["cost_usd"].isna().all()
    assert (first["cost_usd"] > 0).all() and df["cell_id"].nunique() == 2
    assert (df["latency_s"] > 0).all()  # the request's latency, on each of its rows
    summary = promptgrid.summary(df, by=[])
    assert int(summary["calls"].iloc[0]) == 2
    assert int(summary["completion_tokens"].iloc[0]) == int(first["completion_tokens"].sum())
    assert stored(tmp_path / "r", "SELECT COUNT(*) FROM responses") == [(2,)]
    assert stored(tmp_path / "r", "SELECT COUNT(*) FROM choices") == [(6,)]

    again = run(path, server, tmp_path / "r")  # the cache answers per request, all choices
    assert len(server.seen) == 2 and again["cached"].all()
    assert list(again["response"]) == texts and list(again["choice"]) == [0, 1, 2] * 2


@pytest.mark.slow
def test_a_failed_request_with_several_choices_is_one_error_row(
    server: Recorder, tmp_path: Path
) -> None:
    path = write(tmp_path, prompts={"p": "Say {{ w }}"}, vars={"w": ["a", "b"]},
                 params={"model": "gpt-4o-mini", "n": 2})  # fmt: skip
    server.script_for("Say a", ["400"])
    df = run(path, server, tmp_path / "r")
    assert list(df["status"]) == ["error", "ok", "ok"] and list(df["choice"]) == [0, 0, 1]


# --------------------------------------------------------------------------- images


@pytest.mark.slow
def test_images_from_a_dataset_are_sent_as_data_urls(server: Recorder, tmp_path: Path) -> None:
    images = tmp_path / "img"
    images.mkdir()
    cat, dog = b"\x89PNG\r\n\x1a\n" + b"cat" * 40, b"\xff\xd8\xff\xe0" + b"dog" * 50
    (images / "cat.png").write_bytes(cat)
    (images / "dog.jpg").write_bytes(dog)
    (tmp_path / "animals.csv").write_text("image,animal\nimg/cat.png,cat\nimg/dog.jpg,dog\n")
    path = write(
        tmp_path,
        prompts={
            "p": [
                {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Is this a {{ animal }}?"},
                        {"type": "image_file", "path": "{{ image }}", "detail": "low"},
                        {"type": "image_url", "image_url": "https://example.com/ref.png"},
                    ],
                },
            ]
        },
        cases_file="animals.csv",
        params={"model": "gpt-4o-mini"},
    )
    df = run(path, server, tmp_path / "r")

    for sent, data, media in zip(server.bodies(), (cat, dog), ("png", "jpeg"), strict=True):
        text, image, url = sent["messages"][1]["content"]
        assert text["type"] == "text" and sent["messages"][0]["content"][0]["text"] == "Be brief."
        encoded = base64.b64encode(data).decode()
        assert image == {"type": "image_url",
                         "image_url": {"url": f"data:image/{media};base64,{encoded}",
                                       "detail": "low"}}  # fmt: skip
        assert url == {"type": "image_url", "image_url": {"url": "https://example.com/ref.png"}}
    assert list(df["response"]) == ["echo: Is this a cat?", "echo: Is this a dog?"]
    # The table and the store record each image by its size and hash, not its base64.
    recorded = json.loads(df["messages"][0])[1]["content"][1]["image_url"]["url"]
    assert recorded == (
        f"data:image/png;base64,<{len(cat):,} bytes, sha256:{hashlib.sha256(cat).hexdigest()}>"
    )
    assert not any(";base64,iVBOR" in r for (r,) in stored(tmp_path / "r",
                   "SELECT request_json FROM requests"))  # fmt: skip

    (images / "cat.png").write_bytes(cat + b"!")  # another image: another request
    again = run(path, server, tmp_path / "r")
    assert list(again["cached"]) == [False, True] and again["cell_id"][0] != df["cell_id"][0]


@pytest.mark.slow
def test_an_image_a_row_names_that_is_missing_stops_the_run_naming_the_cell(
    server: Recorder, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    path = write(
        tmp_path,
        prompts={
            "p": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is it?"},
                        {"type": "image_file", "path": "{{ image }}"},
                    ],
                }
            ]
        },
        vars={"image": ["a.png", "gone.png"]},
        params={"model": "gpt-4o-mini"},
    )
    with pytest.raises(SpecError, match=r"cell 1.*image file not found") as caught:
        run(path, server, tmp_path / "r")
    assert "prompts.p[0].content[1].path" in str(caught.value)


# --------------------------------------------------------------------------- Responses API


@pytest.mark.slow
def test_the_responses_api_with_reasoning(server: Recorder, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        api="responses",
        prompts={"p": [{"role": "developer", "content": "Think."},
                       {"role": "user", "content": "Why is the sky {{ color }}?"}]},
        vars={"color": ["blue"]},
        params={"model": "o4-mini", "reasoning_effort": ["low", "high"],
                "reasoning": {"summary": "auto"}, "max_completion_tokens": 300},
    )  # fmt: skip
    df = run(path, server, tmp_path / "r")

    sent = server.bodies()
    assert [s["reasoning"] for s in sent] == [
        {"summary": "auto", "effort": "low"}, {"summary": "auto", "effort": "high"},
    ]  # fmt: skip
    assert all(s["max_output_tokens"] == 300 and "messages" not in s for s in sent)
    assert server.seen[0]["path"] == "/v1/responses"
    text = "echo: Why is the sky blue?"
    assert list(df["response"]) == [text, text] and list(df["finish_reason"]) == ["stop"] * 2
    assert list(df["reasoning_tokens"]) == [8, 32]
    assert list(df["completion_tokens"]) == [estimate_text_tokens(text) + r for r in (8, 32)]
    assert list(df["reasoning_summary"]) == ["Thinking about: Why is the sky blue?"] * 2
    assert (
        stored(tmp_path / "r", "SELECT reasoning_summary FROM responses")
        == [("Thinking about: Why is the sky blue?",)] * 2
    )


@pytest.mark.slow
def test_one_grid_runs_against_either_api(server: Recorder, tmp_path: Path) -> None:
    fields: dict[str, Any] = {
        "prompts": {"p": "Say {{ w }}"},
        "vars": {"w": ["a"]},
        "params": {"model": "gpt-4o-mini", "max_tokens": 30, "reasoning_effort": "low",
                   "response_format": RESPONSE_FORMAT, "temperature": 0.5},
    }  # fmt: skip
    chat = run(write(tmp_path, "chat", api="chat", **fields), server, tmp_path / "r")
    responses = run(write(tmp_path, "resp", api="responses", **fields), server, tmp_path / "r")

    to_chat, to_responses = server.bodies()
    assert to_chat["max_tokens"] == 30 and to_chat["reasoning_effort"] == "low"
    assert to_chat["response_format"] == RESPONSE_FORMAT
    assert to_responses["max_output_tokens"] == 30 and to_responses["reasoning"] == {
        "effort": "low"
    }
    assert to_responses["text"] == {"format": {"type": "json_schema", "name": "animal",
                                               "schema": SCHEMA, "strict": True}}  # fmt: skip
    assert to_responses["temperature"] == 0.5
    assert chat["parsed"][0] == responses["parsed"][0]  # the same answer either way...
    assert chat["cell_id"][0] != responses["cell_id"][0]  # ...to two different requests


# --------------------------------------------------------------------------- structured outputs


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.slow
def test_structured_outputs_are_parsed_and_a_broken_one_is_flagged(
    api: str, server: Recorder, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        api=api,
        prompts={"p": "Describe a {{ animal }}"},
        vars={"animal": ["cat", "dog", "fish"]},
        params={
            "model": "gpt-4o-mini",
            "text": {"format": {"type": "json_schema", "name": "animal", "schema": SCHEMA}},
        },
    )
    server.script_for("dog", ["bad_json"])
    server.script_for("fish", ["refusal"])
    df = run(path, server, tmp_path / "r").set_index("animal")

    expected = synthetic.structured_text("json_schema", SCHEMA, "Describe a cat")
    assert df.loc["cat", "response"] == expected
    assert loads(df.loc["cat", "parsed"]) == {"name": "echo: Describe a cat", "legs": 0}
    assert missing(df.loc["cat", "parse_error"])
    dog = synthetic.structured_text("json_schema", SCHEMA, "Describe a dog")
    assert df.loc["dog", "response"] == dog[: len(dog) // 2] and missing(df.loc["dog", "parsed"])
    assert df.loc["dog", "parse_error"].startswith("not JSON")
    assert df.loc["fish", "refusal"].startswith("I can't help") and missing(
        df.loc["fish", "response"]
    )
    assert df.loc["fish", "parse_error"].startswith("no text")
    assert (df["status"] == "ok").all()
    rows = stored(tmp_path / "r", "SELECT parsed_json, parse_error, refusal FROM responses")
    table = zip(df["parsed"], df["parse_error"], df["refusal"], strict=True)
    assert sorted(rows, key=str) == sorted(
        (tuple(None if missing(v) else v for v in row) for row in table), key=str
    )


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.slow
def test_streams_measure_ttft_and_cut_streams_are_retried(
    api: str, server: Recorder, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        api=api,
        prompts={"p": "Say {{ w }} please"},
        vars={"w": ["a", "b", "c"]},
        params={"model": "gpt-4o-mini", "stream": True, "max_tokens": 40},
    )
    server.script_for("Say b", ["stream_cut"])
    server.script_for("Say c", ["truncated"])
    df = run(path, server, tmp_path / "r")

    if api == "chat":  # usage is asked for, and comes in the stream's last chunk
        assert server.bodies()[0]["stream_options"] == {"include_usage": True}
    assert list(df["response"]) == [f"echo: Say {w} please" for w in "abc"]
    assert (df["status"] == "ok").all() and list(df["attempts"]) == [1, 2, 2]
    assert list(df["completion_tokens"]) == [estimate_text_tokens(r) for r in df["response"]]
    assert (df["ttft_s"] >= 0).all() and (df["ttft_s"] <= df["latency_s"]).all()
    assert df["tokens_per_s"].notna().all() and (df["tokens_per_s"] > 0).all()
    stats = server.stats()
    assert stats["by_outcome"]["stream_cut"] == 1 and stats["by_outcome"]["truncated"] == 1
    history = stored(tmp_path / "r", "SELECT idx, error_type FROM attempts WHERE status='error'")
    assert sorted(history) == [(1, "connection_error"), (2, "malformed_response")]
    assert stored(tmp_path / "r", "SELECT COUNT(*) FROM responses WHERE ttft_s >= 0") == [(3,)]


@pytest.mark.slow
def test_a_stream_of_several_choices(server: Recorder, tmp_path: Path) -> None:
    params = {"model": "gpt-4o-mini", "stream": True, "n": 2, "logprobs": True}
    path = write(tmp_path, prompts={"p": "Say {{ w }}"}, vars={"w": ["a"]}, params=params)
    df = run(path, server, tmp_path / "r")
    assert list(df["response"]) == ["echo: Say a", "echo [1]: Say a"]
    assert [loads(p)["content"] for p in df["token_logprobs"]] == [
        synthetic.logprobs(t, 0) for t in df["response"]
    ]


# --------------------------------------------------------------------------- logprobs


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.slow
def test_logprobs_are_kept(api: str, stream: bool, server: Recorder, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        api=api,
        prompts={"p": "Say {{ w }} now"},
        vars={"w": ["a"]},
        params={"model": "gpt-4o-mini", "logprobs": True, "top_logprobs": 2, "stream": stream},
    )
    df = run(path, server, tmp_path / "r")

    sent = server.bodies()[0]
    if api == "responses":
        assert sent["include"] == ["message.output_text.logprobs"] and sent["top_logprobs"] == 2
    expected = synthetic.logprobs("echo: Say a now", 2)
    kept = loads(df["token_logprobs"][0])
    assert (kept["content"] if api == "chat" else kept) == expected
    assert loads(stored(tmp_path / "r", "SELECT logprobs_json FROM responses")[0][0]) == kept


@pytest.mark.slow
def test_no_logprobs_unless_asked(server: Recorder, tmp_path: Path) -> None:
    path = write(tmp_path, prompts={"p": "hi"}, params={"model": "gpt-4o-mini"})
    df = run(path, server, tmp_path / "r")
    assert df["token_logprobs"].isna().all() and df["ttft_s"].isna().all()


# --------------------------------------------------------------------------- presets and Azure


@pytest.mark.slow
def test_a_local_preset_needs_no_key(
    server: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    path = write(
        tmp_path,
        provider="local",
        providers={"local": {"preset": "vllm", "base_url": server.base_url, "models": ["llama"]}},
        prompts={"p": "hi"},
        params={"model": "llama", "extra_body": {"top_k": 5}},
    )
    df = promptgrid.run(path, results_dir=tmp_path / "r", progress=False)
    assert list(df["response"]) == ["echo: hi"] and server.bodies()[0]["top_k"] == 5
    assert server.seen[0]["headers"]["Authorization"] == "Bearer not-needed"  # OpenAI's key stays


@pytest.mark.parametrize(
    ("api", "version", "route"),
    [
        ("chat", "2024-10-21", "/openai/deployments/team-mini/chat/completions"),
        ("responses", "2025-04-01-preview", "/openai/responses"),
        ("chat", None, "/openai/v1/chat/completions"),
        ("responses", None, "/openai/v1/responses"),
    ],
)
@pytest.mark.slow
def test_azure_deployments_and_api_versions(
    api: str,
    version: str | None,
    route: str,
    server: Recorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    azure = {"preset": "azure", "base_url": f"http://127.0.0.1:{server.port}", "api": api,
             "deployments": {"gpt-4o-mini": "team-mini"}, "models": ["gpt-4o-mini"]}  # fmt: skip
    if version is not None:
        azure["api_version"] = version
    path = write(tmp_path, provider="az", providers={"az": azure}, prompts={"p": "hi"},
                 params={"model": "gpt-4o-mini"})  # fmt: skip
    with pytest.raises(UsageError, match="AZURE_OPENAI_API_KEY"):
        promptgrid.run(path, results_dir=tmp_path / "r", progress=False)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-secret")

    df = promptgrid.run(path, results_dir=tmp_path / "r", progress=False)

    [seen] = server.seen
    assert seen["path"] == route and seen["body"]["model"] == "team-mini"
    assert seen["query"] == ({"api-version": version} if version else {})
    key = seen["headers"].get("api-key") or seen["headers"]["Authorization"].removeprefix("Bearer ")
    assert key == "azure-secret"
    assert list(df["model"]) == ["gpt-4o-mini"] and list(df["resolved_model"]) == ["team-mini"]
    assert list(df["response"]) == ["echo: hi"]


@pytest.mark.slow
def test_a_vendor_that_refuses_a_parameter_is_named_before_anything_runs(
    server: Recorder, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        provider="fast",
        providers={"fast": {"preset": "groq", "base_url": server.base_url, "models": ["llama"]}},
        prompts={"p": "hi"},
        params={"model": "llama", "logprobs": True},
    )
    with pytest.raises(SpecError, match=r"params.logprobs: Groq does not take 'logprobs'"):
        promptgrid.run(path, results_dir=tmp_path / "r", progress=False)
    assert server.seen == [] and not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- offline


def test_every_kind_runs_offline_on_echo(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 10)
    path = write(
        tmp_path,
        provider="echo",
        prompts={
            "p": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe {{ animal }}"},
                        {"type": "image_file", "path": "cat.png"},
                    ],
                }
            ]
        },
        vars={"animal": ["a cat"]},
        params={
            "model": "gpt-4o-mini",
            "n": 2,
            "stream": True,
            "logprobs": True,
            "tools": TOOLS,
            "response_format": RESPONSE_FORMAT,
            "reasoning_effort": "low",
        },
    )
    df = promptgrid.run(path, results_dir=tmp_path / "r", progress=False)
    assert list(df["choice"]) == [0, 1] and df["tool_calls"].isna().all()
    assert [loads(p) for p in df["parsed"]] == [
        {"name": "echo: Describe a cat", "legs": 0},
        {"name": "echo [1]: Describe a cat", "legs": 0},
    ]
    assert list(df["ttft_s"]) == [0.0, 0.0] and df["token_logprobs"].notna().all()
    assert df["reasoning_tokens"][0] == synthetic.REASONING_TOKENS["low"]


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.slow
def test_a_key_echoed_into_a_stream_never_reaches_the_store(api: str, tmp_path: Path) -> None:
    with FaultServer(echo_key=True) as server:
        path = write(tmp_path, api=api, prompts={"p": "Say {{ w }}"}, vars={"w": ["a"]},
                     params={"model": "gpt-4o-mini", "stream": True, "logprobs": True})  # fmt: skip
        df = run(path, server, tmp_path / "r")
    assert df["response"][0] == "echo: Say a key=***"
    assert KEY not in df.to_json() and "***" in str(df["request_id"][0])
    for written in (tmp_path / "r").rglob("*"):  # the store (and its WAL) and every file
        assert not written.is_file() or KEY.encode() not in written.read_bytes(), written


@pytest.mark.slow
def test_tool_calls_show_in_every_answer_view(server: Recorder, tmp_path: Path) -> None:
    from click.testing import CliRunner
    from openpyxl import load_workbook

    from promptgrid.cli import cli

    path = write(
        tmp_path,
        prompts={"p": "Weather in {{ city }}?"},
        vars={"city": ["Paris", "Oslo"]},
        params={"model": "gpt-4o-mini", "tools": TOOLS, "tool_choice": "required"},
    )
    df = run(path, server, tmp_path / "r", formats="xlsx,html")
    shown = 'get_weather(city="echo: Weather in Paris?", days=0)'
    assert promptgrid.compare(df).loc["Paris", "p"] == "→ " + shown
    folder = tmp_path / "r" / "kinds" / str(df["run_id"][0])
    book = load_workbook(folder / "results.xlsx")
    try:
        assert book["compare"]["B2"].value == "→ " + shown
    finally:
        book.close()
    assert json.dumps(shown)[1:-1] in (folder / "report.html").read_text(encoding="utf-8")
    done = CliRunner().invoke(cli, ["compare", "--results-dir", str(tmp_path / "r")])
    assert done.exit_code == 0 and "get_weather(city=" in done.output, done.output
