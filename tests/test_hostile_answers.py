"""Hostile answers: whatever a server sends, every answer becomes a row (issue 20, item 1).

A body nested thousands deep, lone and split UTF-16 surrogates (in the text, a tool call's id,
a 400's message), usage that is not a count, a structured answer nested too deep for a JSON
parser: each becomes a valid stored answer (text as valid UTF-8, a lone surrogate as U+FFFD;
usage unknown) or that row's error (``malformed_response``), never an exception out of a
worker, the writer or batch collection. A store that already holds bad values reads back with
nulls and a warning. The real openai SDK talks to the fault server over loopback.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import promptgrid
import promptgrid.engine.attempts
import promptgrid.engine.batch.driver
from promptgrid import untrusted
from promptgrid.apis import parse_structured
from promptgrid.cli import cli
from promptgrid.errors import BadRequest, ExitCode, MalformedResponse
from promptgrid.providers.base import Completion, Request
from promptgrid.providers.openai import OpenAIProvider
from promptgrid.store import Store
from promptgrid.testing import FaultServer

KEY = "sk-test-hostile-answers-0123"
#: What the fault server's "surrogates" kind appends, as it must be stored: the emoji whose
#: UTF-16 halves came apart is whole again, the lone surrogate is U+FFFD.
CLEANED = " ok\U0001f600 \ufffd"
DEEP_TEXT = "[" * 1200 + "]" * 1200
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(promptgrid.engine.attempts, "BACKOFF_MULTIPLIER_S", 0.001)
    monkeypatch.setattr(promptgrid.engine.batch.driver, "POLL_MIN_S", 0.0)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(retry_after_s=0.01) as s:
        yield s


@pytest.fixture
async def provider(server: FaultServer) -> AsyncIterator[OpenAIProvider]:
    made = OpenAIProvider(base_url=server.base_url, api_key=KEY)
    yield made
    await made.aclose()


async def answer(
    server: FaultServer, provider: OpenAIProvider, fault: str, api: str = "chat", **params: Any
) -> Any:
    """One call through the openai provider after scripting ``fault``: its completion, or
    the promptgrid error it raised (anything else escapes and fails the test)."""
    server.script([fault])
    request = Request("e", "gpt-4o-mini", ({"role": "user", "content": "hi"},),
                      {"max_tokens": 20, **params}, api)  # fmt: skip
    try:
        return await provider.complete(request)
    except (MalformedResponse, BadRequest) as exc:
        return exc


def encodable(*texts: str | None) -> bool:
    """Every text encodes as UTF-8 (SQLite can store it)."""
    for text in texts:
        if text is not None:
            text.encode("utf-8")
    return True


# --------------------------------------------------------------------------- the provider edge


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.slow
async def test_a_body_nested_thousands_deep_is_a_malformed_response(
    server: FaultServer, provider: OpenAIProvider, api: str, stream: bool
) -> None:
    got = await answer(server, provider, "deep_body", api, stream=stream)
    assert isinstance(got, MalformedResponse), got


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.slow
async def test_lone_surrogates_become_replacement_characters(
    server: FaultServer, provider: OpenAIProvider, api: str, stream: bool
) -> None:
    got = await answer(server, provider, "surrogates", api, stream=stream)
    assert isinstance(got, Completion), got
    assert got.text == "echo: hi" + CLEANED and encodable(got.text)


@pytest.mark.slow
async def test_a_lone_surrogate_in_a_tool_call_id_becomes_a_replacement_character(
    server: FaultServer, provider: OpenAIProvider
) -> None:
    for stream in (False, True):
        got = await answer(server, provider, "surrogates", tools=TOOLS, tool_choice="required",
                           stream=stream)  # fmt: skip
        assert isinstance(got, Completion), got
        (call,) = got.tool_calls
        assert call["id"].endswith("\ufffd") and encodable(call["id"])


@pytest.mark.slow
async def test_a_lone_surrogate_in_an_error_message_becomes_a_replacement_character(
    server: FaultServer, provider: OpenAIProvider
) -> None:
    got = await answer(server, provider, "error_surrogate")
    assert isinstance(got, BadRequest) and got.http_status == 400
    assert "Invalid request \ufffd" in got.message and encodable(got.message)


#: Usage a server may send that is no count: text, non-finite, negative, fractional, beyond
#: SQLite's integers (Infinity is what JSON's 1e400 reads as).
NOT_COUNTS = ["n/a", "1e400", float("nan"), float("inf"), -1, 2.5, 1e30, 2**70]


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.slow
async def test_usage_that_is_not_a_count_is_unknown(
    server: FaultServer, provider: OpenAIProvider, api: str, stream: bool
) -> None:
    for value in NOT_COUNTS:
        server.configure(bad_usage=value)
        got = await answer(server, provider, "bad_usage", api, stream=stream)
        assert isinstance(got, Completion), (value, got)
        assert got.text == "echo: hi"
        usage = (got.prompt_tokens, got.completion_tokens, got.cached_tokens,
                 got.reasoning_tokens)  # fmt: skip
        assert usage == (None, None, None, None), value
        assert got.tokens_per_s is None


@pytest.mark.slow
async def test_usage_that_is_a_whole_number_written_as_a_float_is_kept(
    server: FaultServer, provider: OpenAIProvider
) -> None:
    server.configure(bad_usage=7.0)
    got = await answer(server, provider, "bad_usage")
    assert (got.prompt_tokens, got.completion_tokens) == (7, 7)
    assert type(got.prompt_tokens) is int


@pytest.mark.parametrize(
    ("value", "kept"),
    [(0, 0), (12, 12), (3.0, 3), (2**63 - 1, 2**63 - 1), (2**63, None), (True, None),
     ("12", None), (None, None), (-0.5, None), (float("nan"), None), ([1], None)],
)  # fmt: skip
def test_a_count_is_an_integer_from_zero(value: Any, kept: int | None) -> None:
    assert untrusted.count(value) == kept


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(DEEP_TEXT, "nested too deeply", id="nested-1200-deep"),
        pytest.param('{"a": NaN}', "not JSON", id="nan"),
        pytest.param('{"a": 1e400}', "not a finite number", id="1e400"),
        pytest.param('{"a": "\\ud800"}', None, id="lone-surrogate"),
    ],
)
def test_a_structured_answer_a_parser_cannot_take_is_a_parse_error(
    text: str, error: str | None
) -> None:
    parsed, why = parse_structured(text)
    if error is None:
        assert parsed == '{"a":"\ufffd"}' and why is None
    else:
        assert parsed is None and why is not None and error in why


# --------------------------------------------------------------------------- whole runs


def write(folder: Path, name: str = "hostile", **fields: Any) -> Path:
    """An experiment of 8 words x stream [false, true] (16 cells) asking for JSON objects."""
    fields.setdefault("provider", "openai")
    fields.setdefault("prompts", {"p": "Say {{ w }}"})
    fields.setdefault("vars", {"w": [f"w{i}" for i in range(8)]})
    fields.setdefault("params", {"model": "gpt-4o-mini", "max_tokens": 20,
                                 "response_format": {"type": "json_object"},
                                 "stream": [False, True]})  # fmt: skip
    fields.setdefault("retry", {"max_attempts": 2, "max_wait_s": 0.01})
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields}, sort_keys=False), encoding="utf-8")
    return path


def script_hostile(server: FaultServer) -> None:
    """w1..w5 get hostile answers every time they are asked; w0, w6 and w7 good ones."""
    server.configure(bad_usage=float("nan"))
    server.script_for("Say w1", ["deep_body"] * 50)
    server.script_for("Say w2", ["error_surrogate"] * 50)
    server.script_for("Say w3", ["surrogates"] * 50)
    server.script_for("Say w4", ["bad_usage"] * 50)
    server.answer_for("Say w5", DEEP_TEXT)


def assert_hostile_rows(df: pd.DataFrame) -> None:
    """Every good answer kept; each hostile one a valid answer or its row's error."""
    assert len(df) == 16
    by_word = {w: part for w, part in df.groupby("w")}
    for word in ("w0", "w6", "w7"):
        good = by_word[word]
        assert (good["status"] == "ok").all() and good["parse_error"].isna().all()
        assert (good["prompt_tokens"] > 0).all()
    w1 = by_word["w1"]
    assert (w1["status"] == "error").all() and (w1["error_type"] == "malformed_response").all()
    w2 = by_word["w2"]
    assert (w2["status"] == "error").all() and (w2["error_type"] == "bad_request").all()
    assert w2["error"].str.contains("Invalid request \ufffd").all()
    w3 = by_word["w3"]
    assert (w3["status"] == "ok").all() and w3["response"].str.endswith(CLEANED).all()
    w4 = by_word["w4"]
    assert (w4["status"] == "ok").all() and w4["prompt_tokens"].isna().all()
    assert w4["completion_tokens"].isna().all()
    w5 = by_word["w5"]
    assert (w5["status"] == "ok").all() and (w5["response"] == DEEP_TEXT).all()
    assert w5["parsed"].isna().all() and w5["parse_error"].str.contains("nested").all()


@pytest.mark.slow
def test_a_mixed_grid_keeps_every_good_answer_and_errs_each_hostile_one(
    server: FaultServer, tmp_path: Path
) -> None:
    path = write(tmp_path)
    script_hostile(server)
    results = tmp_path / "r"
    runner = CliRunner()
    base = ["--base-url", server.base_url, "--no-progress", "--results-dir", str(results)]
    done = runner.invoke(cli, ["run", str(path), *base, "--format", "jsonl"])
    assert done.exit_code == ExitCode.ERROR_ROWS, done.output
    assert "Traceback" not in done.output
    df = promptgrid.load(results_dir=results)
    assert_hostile_rows(df)
    # Unknown usage is charged, and recorded, at the request's worst case.
    assert (df.loc[df["w"] == "w4", "cost_usd"] > 0).all()
    assert df.attrs.get("status", "finished") == "finished"
    # Resuming and retrying the run go on without a crash: the hostile cells stay hostile.
    run_id = str(df["run_id"].iloc[0])
    with closing(sqlite3.connect(results / "promptgrid.sqlite")) as db, db:  # as if killed
        db.execute("DELETE FROM results WHERE idx % 3 = 0")
        db.execute("UPDATE runs SET status = 'interrupted'")
    again = runner.invoke(cli, ["run", str(path), *base, "--resume"])
    assert again.exit_code == ExitCode.ERROR_ROWS, again.output
    assert_hostile_rows(promptgrid.load(run_id, results_dir=results))
    retried = promptgrid.retry(run_id, results_dir=results, progress=False)
    assert_hostile_rows(retried)
    for command in (["show", run_id], ["export", run_id, "--format", "csv,xlsx,html"]):
        shown = runner.invoke(cli, [*command, "--results-dir", str(results)])
        assert shown.exit_code == 0, shown.output


@pytest.mark.slow
def test_a_batch_of_hostile_lines_keeps_its_good_answers(
    server: FaultServer, tmp_path: Path
) -> None:
    path = write(tmp_path, params={"model": "gpt-4o-mini", "max_tokens": 20,
                                   "response_format": {"type": "json_object"},
                                   "temperature": [0.0, 1.0]})  # fmt: skip
    script_hostile(server)
    results = tmp_path / "r"
    runner = CliRunner()
    base = ["--no-progress", "--results-dir", str(results)]
    made = runner.invoke(cli, ["run", str(path), "--batch", "--base-url", server.base_url, *base])
    assert made.exit_code == 0, made.output
    with Store.in_dir(results, readonly=True) as store:
        run_id = store.runs()[0].run_id
    server.batches.complete()
    done = runner.invoke(cli, ["batch", "collect", run_id, *base])
    assert done.exit_code == ExitCode.ERROR_ROWS, done.output
    assert_hostile_rows(promptgrid.load(run_id, results_dir=results))


# --------------------------------------------------------------------------- the last resort


class Careless:
    """A provider past no edge, answering what no check foresaw: a surrogate the store cannot
    encode (q1), a tool call too deep to write as JSON (q2), a count beyond SQLite's integers
    (q3: a reasoning count, which the budget's check of usage does not read); other prompts
    get a good answer."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def complete(self, request: Request) -> Completion:
        content = request.messages[-1]["content"]
        self.calls.append(content)
        if content == "q1":
            return Completion("fine", "stop", 1, 1, resolved_model="m\ud800")
        if content == "q2":
            deep: list[Any] = []
            for _ in range(50_000):
                deep = [deep]
            return Completion(None, "tool_calls", 1, 1, tool_calls=({"id": "c", "x": deep},))
        if content == "q3":
            return Completion("fine", "stop", 2, 1, reasoning_tokens=2**70)
        return Completion(f"answer to {content}", "stop", 3, 4)

    async def aclose(self) -> None:
        pass


async def test_an_answer_no_check_foresaw_is_its_rows_error(tmp_path: Path) -> None:
    from promptgrid.config import RunOptions, resolve
    from promptgrid.engine.limiter import EndpointLimiter
    from promptgrid.engine.scheduler import Endpoint, Scheduler
    from promptgrid.engine.storeio import StoreIO
    from promptgrid.grid import expand
    from promptgrid.pricing import Pricing
    from promptgrid.spec.schema import RetryPolicy
    from promptgrid.store import Owner

    exp = promptgrid.Experiment(prompts={"p": "q{{ i }}"}, vars={"i": [0, 1, 2, 3, 1, 4]},
                                params={"model": "m"}, provider="echo")  # fmt: skip
    store = Store.in_dir(tmp_path)
    store.create_run("r1", exp.name, None, exp.to_dict(), exp.columns(), exp.total, {})
    provider = Careless()
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    scheduler = Scheduler(
        StoreIO(store.path, Owner.me(), after=0), "r1",
        {"echo": Endpoint(provider, limiter, Pricing(free=True))},
        concurrency=1, retry=RetryPolicy(max_attempts=2, max_wait_s=0.01),
    )  # fmt: skip
    try:
        summary = await asyncio.wait_for(
            scheduler.execute(expand(resolve(exp, RunOptions(results_dir=tmp_path)))), 60
        )
    finally:
        scheduler.io.close()
    assert (summary.ok, summary.errors) == (2, 4)
    assert summary.error_types == {"malformed_response": 4}
    assert provider.calls.count("q1") == 1  # its twin shares its (error) row
    rows = {idx: (status, error_type, error)
            for idx, status, error_type, error in store.db.execute(
                "SELECT idx, status, error_type, error FROM results")}  # fmt: skip
    store.close()
    assert [rows[i][0] for i in range(6)] == ["ok", "error", "error", "error", "error", "ok"]
    for i in (1, 2, 3, 4):
        assert rows[i][1] == "malformed_response"
        assert rows[i][2].startswith("the answer could not be stored: "), rows[i]
    assert "RecursionError" in rows[2][2] and "OverflowError" in rows[3][2]


# ------------------------------------------------------------------ a store with bad values


#: Values another program (or an older promptgrid) may have left in a store, by table and column.
CORRUPTION = [
    "UPDATE responses SET prompt_tokens = 'n/a', completion_tokens = 1e300 WHERE id = 1",
    "UPDATE responses SET completion_tokens = 9e18, reasoning_tokens = 'x' WHERE id = 2",
    "UPDATE responses SET response = CAST(X'66FF6F' AS TEXT), ttft_s = 1e999 WHERE id = 3",
    "UPDATE responses SET refusal = CAST(X'EDA080' AS TEXT), tool_calls_json = '{oops' "
    "WHERE id = 4",
    "UPDATE responses SET tokens_per_s = 'fast', latency_s = -1e999 WHERE id = 5",
    "UPDATE results SET latency_s = 'slow', cost_usd = 'free', http_status = 'x', "
    "attempts = 2.5 WHERE idx = 6",
    "UPDATE results SET cached = 'maybe' WHERE idx = 7",
    "UPDATE responses SET finish_reason = X'00FF' WHERE id = 9",
]


def test_a_store_holding_bad_values_reads_with_nulls_and_a_warning(
    animals: Path, tmp_path: Path
) -> None:
    results = tmp_path / "r"
    promptgrid.run(animals, results_dir=results, progress=False, formats="jsonl")
    with closing(sqlite3.connect(results / "promptgrid.sqlite")) as db, db:
        for statement in CORRUPTION:
            db.execute(statement)
    with pytest.warns(promptgrid.errors.PromptgridWarning, match="not valid"):
        df = promptgrid.load(results_dir=results)
    assert len(df) == 12 and (df["status"] == "ok").all()
    first = df.iloc[0]
    assert pd.isna(first["prompt_tokens"]) and pd.isna(first["completion_tokens"])
    assert df.iloc[1]["completion_tokens"] == 9 * 10**18 and pd.isna(df.iloc[1]["reasoning_tokens"])
    assert df.iloc[2]["response"] == "f\ufffdo" and pd.isna(df.iloc[2]["ttft_s"])
    assert "\ufffd" in df.iloc[3]["refusal"] and df.iloc[3]["tool_calls"] == "{oops"
    assert pd.isna(df.iloc[6]["latency_s"]) and pd.isna(df.iloc[6]["cost_usd"])
    assert pd.isna(df.iloc[6]["http_status"]) and pd.isna(df.iloc[6]["attempts"])
    assert pd.isna(df.iloc[8]["finish_reason"])  # bytes, not text
    assert df["response"].str.startswith("echo").sum() == 11  # the rest reads as it was
    assert (df["finish_reason"] == "stop").sum() == 11
    runner = CliRunner()
    base = ["--results-dir", str(results)]
    for command in (["show"], ["export", "--format", "csv,jsonl,parquet,xlsx,html"],
                    ["report"], ["compare"]):  # fmt: skip
        with pytest.warns(promptgrid.errors.PromptgridWarning, match="not valid"):
            done = runner.invoke(cli, [*command, *base])
        assert done.exit_code == 0, (command, done.output)
