"""Batch mode end to end: promptgrid -> the real openai SDK's files and batches -> loopback ->
the fault server's Files and Batch APIs, and back into the store and the DataFrame.

The server's batches move only when a test says so (``server.batches.complete``, ``expire``,
``progress``, ``fail``, a client's cancel), so nothing waits for time to pass: where a test
waits for batches, the poll interval is patched to zero and the server completes a batch at
its N-th poll (``batch_complete_after``).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from aiohttp import web
from click.testing import CliRunner

import promptgrid
import promptgrid.engine.attempts
import promptgrid.engine.batch.driver
import promptgrid.store.leases
import promptgrid.store.owners
from promptgrid._sync import RunHandle
from promptgrid.cli import cli
from promptgrid.config import RunOptions
from promptgrid.engine.storeio import StoreIO
from promptgrid.errors import (
    BadRequest,
    BatchCancelled,
    BatchExpired,
    ExitCode,
    ProviderError,
    UsageError,
)
from promptgrid.pricing import Price, table_price
from promptgrid.providers.batch import custom_id_of, read_line
from promptgrid.runner import Selection, execute
from promptgrid.store import Store
from promptgrid.store import batch as batchstore
from promptgrid.testing import FaultServer

KEY = "sk-test-batches-0123456789"
#: Columns a batch run fills differently from an online run of the same grid.
BATCH_COLUMNS = ["run_id", "latency_s", "request_id", "batch_id", "cost_usd"]


class Recorder(FaultServer):
    """A fault server that keeps the JSON body of every online request it receives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bodies: list[dict[str, Any]] = []
        handle = self._core._handle

        async def recording(request: web.Request, api: str) -> web.StreamResponse:
            self.bodies.append(json.loads(await request.read()))
            return await handle(request, api)

        self._core._handle = recording  # type: ignore[method-assign]

    def uploaded(self) -> list[dict[str, Any]]:
        """Every line of every request file uploaded (and not yet deleted)."""
        files = self._core.batches.files.values()
        return [json.loads(line) for f in files if f.purpose == "batch"
                for line in f.data.splitlines()]  # fmt: skip


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(promptgrid.engine.attempts, "BACKOFF_MULTIPLIER_S", 0.001)
    monkeypatch.setattr(promptgrid.engine.batch.driver, "POLL_MIN_S", 0.0)  # waits never wait


@pytest.fixture
def server() -> Iterator[Recorder]:
    with Recorder(retry_after_s=0.01) as s:
        yield s


def write(folder: Path, name: str = "batched", **fields: Any) -> Path:
    """An experiment file: by default 3 animals × 2 temperatures, one animal twice (so two
    cells share each of its requests): 8 cells, 6 distinct requests."""
    fields.setdefault("provider", "openai")
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Name a {{ animal }}"}]  # fmt: skip
    fields.setdefault("prompts", {"p": messages})
    fields.setdefault("vars", {"animal": ["dog", "cat", "horse", "dog"]})
    fields.setdefault("params", {"model": "gpt-4o-mini", "max_tokens": 20,
                                 "temperature": [0.0, 1.0]})  # fmt: skip
    fields.setdefault("retry", {"max_attempts": 3, "max_wait_s": 0.01})
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields}, sort_keys=False), encoding="utf-8")
    return path


def run(path: Path, server: Any, results: Path, **options: Any) -> pd.DataFrame:
    return promptgrid.run(
        path, base_url=server.base_url, results_dir=results, progress=False, **options
    )


def collect(run_id: str, results: Path, **options: Any) -> pd.DataFrame:
    return promptgrid.collect(run_id, results_dir=results, progress=False, **options)


def chunks(results: Path, run_id: str) -> list[batchstore.Chunk]:
    with Store.in_dir(results, readonly=True) as store:
        return batchstore.chunks(store, run_id)


def status_of(results: Path, run_id: str) -> str:
    with Store.in_dir(results, readonly=True) as store:
        info = store.run(run_id)
    assert info is not None
    return info.status


def by_cell(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=BATCH_COLUMNS).reset_index(drop=True)


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_batch_run_gives_the_online_table_at_batch_prices(
    server: Recorder, tmp_path: Path
) -> None:
    path = write(tmp_path)
    submitted = run(path, server, tmp_path / "b", batch=True)
    run_id = submitted.attrs["run_id"]
    assert submitted.attrs["status"] == "submitted" and submitted.empty
    assert status_of(tmp_path / "b", run_id) == "submitted"
    stats = server.batches.stats()
    assert stats["created"] == {f"{run_id}/0": 1}
    assert len(server.uploaded()) == 6  # 8 cells, 6 distinct requests: one line each

    server.batches.complete()
    batched = collect(run_id, tmp_path / "b")
    online = run(path, server, tmp_path / "o")
    assert status_of(tmp_path / "b", run_id) == "finished"

    pd.testing.assert_frame_equal(by_cell(batched), by_cell(online))
    assert batched["batch_id"].notna().all() and online["batch_id"].isna().all()
    assert batched["latency_s"].isna().sum() == 6  # a batch does not time its requests
    price = table_price("gpt-4o-mini")
    assert price is not None
    paid = batched[~batched["cached"]]
    assert len(paid) == 6 and batched["cached"].sum() == 2  # the shared requests: cached copies
    for row in paid.itertuples():
        expected = price.cost(int(row.prompt_tokens), int(row.completion_tokens), batch=True)
        assert row.cost_usd == pytest.approx(expected)
    assert paid["cost_usd"].sum() == pytest.approx(online["cost_usd"].sum() / 2)
    assert server.batches.stats()["answered"] == {c: 1 for c in paid["cell_id"]}
    assert server.batches.stats()["files"] == 0  # input, output: deleted once collected


@pytest.mark.slow
def test_a_batch_line_is_exactly_the_online_request(server: Recorder, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": schema}}]
    fields = {
        "vars": {"animal": ["dog"]},
        "params": {
            "model": "gpt-4o-mini", "max_tokens": 30, "seed": 7, "stop": ["\n"],
            "tools": tools, "tool_choice": "auto", "logprobs": True, "top_logprobs": 2,
            "response_format": {"type": "json_object"},
            "extra_body": {"top_k": 5, "custom_flag": True},
        },
    }  # fmt: skip
    path = write(tmp_path, **fields)
    run(path, server, tmp_path / "o")
    run(path, server, tmp_path / "b", batch=True)
    (line,) = server.uploaded()
    (online,) = server.bodies
    assert line["body"] == online
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    assert line["body"]["top_k"] == 5 and "extra_body" not in line["body"]


@pytest.mark.slow
def test_the_responses_api_goes_to_its_batch_endpoint(server: Recorder, tmp_path: Path) -> None:
    path = write(tmp_path, api="responses", vars={"animal": ["dog", "cat"]},
                 params={"model": "o4-mini", "max_output_tokens": 50,
                         "reasoning": {"effort": "low", "summary": "auto"}})  # fmt: skip
    online = run(path, server, tmp_path / "o")
    run_id = run(path, server, tmp_path / "b", batch=True).attrs["run_id"]
    assert {line["url"] for line in server.uploaded()} == {"/v1/responses"}
    assert [line["body"] for line in server.uploaded()] == server.bodies
    server.batches.complete()
    batched = collect(run_id, tmp_path / "b")
    pd.testing.assert_frame_equal(by_cell(batched), by_cell(online))
    assert batched["reasoning_summary"].notna().all()


@pytest.mark.slow
def test_cells_already_answered_are_not_submitted(server: Recorder, tmp_path: Path) -> None:
    results = tmp_path / "r"
    first = write(tmp_path, vars={"animal": ["dog", "cat"]})
    run(first, server, results)  # 4 answers in the store
    wider = write(tmp_path, vars={"animal": ["dog", "cat", "horse"]})
    submitted = run(wider, server, results, batch=True)
    assert len(submitted) == 4 and submitted["cached"].all()
    assert sorted(line["body"]["messages"][-1]["content"] for line in server.uploaded()) == [
        "Name a horse", "Name a horse",
    ]  # fmt: skip
    server.batches.complete()
    done = collect(submitted.attrs["run_id"], results)
    assert len(done) == 6 and (done["status"] == "ok").all()
    assert done["batch_id"].notna().sum() == 2


@pytest.mark.slow
def test_files_are_split_at_the_provider_limits(server: Recorder, tmp_path: Path) -> None:
    # 4 animals x 2 temperatures x 3 repeats = 24 distinct requests.
    path = write(tmp_path, vars={"animal": ["ant", "bee", "cow", "doe"]}, repeats=3,
                 providers={"openai": {"batch": {"max_requests": 5}}})  # fmt: skip
    run_id = run(path, server, tmp_path / "r", batch=True).attrs["run_id"]
    made = chunks(tmp_path / "r", run_id)
    assert [c.requests for c in made] == [5, 5, 5, 5, 4]
    assert server.batches.stats()["created"] == {f"{run_id}/{i}": 1 for i in range(5)}

    line = len(json.dumps(server.uploaded()[0]).encode()) + 1  # a line is ~this big
    by_size = write(tmp_path, name="by-size", vars={"animal": ["ant", "bee", "cow", "doe"]},
                    repeats=3, batch={"max_bytes": 3 * line + 10})  # fmt: skip
    other = run(by_size, server, tmp_path / "s", batch=True).attrs["run_id"]
    sizes = chunks(tmp_path / "s", other)
    assert all(c.bytes <= 3 * line + 10 and c.requests <= 3 for c in sizes)
    assert sum(c.requests for c in sizes) == 24 and len(sizes) >= 8

    server.batches.complete()
    for results, rid in ((tmp_path / "r", run_id), (tmp_path / "s", other)):
        df = collect(rid, results)
        assert len(df) == 24 and (df["status"] == "ok").all()
        assert df["batch_id"].nunique() == len(chunks(results, rid))


@pytest.mark.slow
def test_the_same_command_again_continues_the_run(server: Recorder, tmp_path: Path) -> None:
    path = write(tmp_path)
    first = run(path, server, tmp_path / "r", batch=True).attrs["run_id"]
    with pytest.warns(promptgrid.errors.PromptgridWarning, match=f"continuing run {first}"):
        again = run(path, server, tmp_path / "r", batch=True)
    assert again.attrs["run_id"] == first and again.attrs["status"] == "submitted"
    assert len(server.batches.ids()) == 1 and sum(server.batches.stats()["uploads"].values()) == 1
    server.batches.complete()
    with pytest.warns(promptgrid.errors.PromptgridWarning):
        done = run(path, server, tmp_path / "r", batch=True)  # collects what ended
    assert done.attrs["status"] == "finished" and len(done) == 8


@pytest.mark.slow
def test_the_same_command_again_continues_its_own_shards_run(
    server: Recorder, tmp_path: Path
) -> None:
    # One folder, two shards in batch mode: each command goes on with its own shard's run.
    path = write(tmp_path)
    zero = run(path, server, tmp_path / "r", batch=True, shard="0/2").attrs["run_id"]
    one = run(path, server, tmp_path / "r", batch=True, shard="1/2").attrs["run_id"]
    assert one != zero  # a new run of shard 1/2, not shard 0/2's run going on
    with pytest.warns(promptgrid.errors.PromptgridWarning, match=f"continuing run {zero}"):
        again = run(path, server, tmp_path / "r", batch=True, shard="0/2")
    assert again.attrs["run_id"] == zero


@pytest.mark.slow
def test_wait_polls_until_every_batch_is_in(server: Recorder, tmp_path: Path) -> None:
    server.configure(batch_complete_after=3)
    server.batches.script(["503", "drop", "500"], op="retrieve")  # transient failures on polls
    path = write(tmp_path, providers={"openai": {"batch": {"max_requests": 2}}})
    df = run(path, server, tmp_path / "r", batch=True, wait=True)
    assert df.attrs["status"] == "finished" and len(df) == 8 and (df["status"] == "ok").all()
    assert server.batches.stats()["calls"]["retrieve"] >= 3 * 3 + 3


@pytest.mark.slow
def test_poll_backoff_grows_while_nothing_changes_and_is_capped(
    server: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(promptgrid.engine.batch.driver, "POLL_MIN_S", 5.0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 12:
            server.batches.complete()

    monkeypatch.setattr(promptgrid.engine.batch.driver, "SLEEP", sleep)
    df = run(write(tmp_path), server, tmp_path / "r", batch=True, wait=True)
    assert df.attrs["status"] == "finished"
    assert waits[:5] == [5.0, 7.5, 11.25, 16.875, 25.3125]
    assert max(waits) == 60.0 and waits[-1] == 60.0 and len(waits) == 12


# --------------------------------------------------------------------------- partial ends


@pytest.mark.slow
def test_an_expired_batch_keeps_what_ran_and_retry_sends_the_rest(
    server: Recorder, tmp_path: Path
) -> None:
    results = tmp_path / "r"
    run_id = run(write(tmp_path), server, results, batch=True).attrs["run_id"]
    server.batches.progress(done=2)
    server.batches.expire()
    df = collect(run_id, results)
    assert status_of(results, run_id) == "finished"
    ok = df[df["status"] == "ok"]
    assert len(ok) == 4 and set(ok["animal"]) == {"dog"}  # 2 requests ran, each for 2 cells
    assert (df.loc[df["status"] == "error", "error_type"] == "batch_expired").all()
    assert df.loc[df["status"] == "error", "cost_usd"].isna().all()

    again = promptgrid.retry(run_id, results_dir=results, progress=False, batch=True)
    assert again.attrs["status"] == "submitted"
    lines = server.uploaded()
    assert len(lines) == 4  # the 4 requests that never ran, once each
    server.batches.complete()
    done = collect(run_id, results)
    assert (done["status"] == "ok").all() and len(done) == 8
    answered = server.batches.stats()["answered"]
    assert set(answered.values()) == {1} and len(answered) == 6  # nothing paid twice


@pytest.mark.slow
def test_a_cancelled_batch_keeps_what_ran(server: Recorder, tmp_path: Path) -> None:
    results = tmp_path / "r"
    run_id = run(write(tmp_path), server, results, batch=True).attrs["run_id"]
    server.batches.progress(done=3)
    cancelled = promptgrid.cancel_batches(run_id, results_dir=results)
    assert list(cancelled["status"]) == ["cancelling"]
    df = collect(run_id, results)  # its next poll: cancelled, with the 3 that ran
    assert (df["status"] == "ok").sum() == 5  # 3 requests ran, the 2 of "dog" for 2 cells each
    errors = df[df["status"] == "error"]
    assert len(errors) == 3 and set(errors["error_type"]) == {"batch_cancelled"}
    online = promptgrid.retry(run_id, results_dir=results, progress=False, batch=False)
    assert (online["status"] == "ok").all() and len(server.bodies) == 3


@pytest.mark.slow
def test_cancel_before_a_batch_exists_drops_the_chunk(server: Recorder, tmp_path: Path) -> None:
    results = tmp_path / "r"
    server.batches.script(["400"], op="create")  # the provider refuses the batch
    with pytest.raises(BadRequest, match=r"creating the batch of request file .* HTTP 400"):
        run(write(tmp_path), server, results, batch=True)
    with Store.in_dir(results, readonly=True) as store:
        run_id = store.runs()[0].run_id
        assert store.runs()[0].status == "stopped"
    (chunk,) = chunks(results, run_id)
    assert chunk.state == "creating" and chunk.batch_id is None
    promptgrid.cancel_batches(run_id, results_dir=results)
    assert chunks(results, run_id)[0].state == "cancelled"
    done = collect(run_id, results)
    assert set(done["error_type"]) == {"batch_cancelled"} and done["batch_id"].isna().all()
    assert server.batches.stats()["created"] == {}


@pytest.mark.slow
def test_a_batch_that_fails_validation_gives_error_rows(server: Recorder, tmp_path: Path) -> None:
    results = tmp_path / "r"
    run_id = run(write(tmp_path), server, results, batch=True).attrs["run_id"]
    server.batches.fail(errors=[{"code": "invalid_request", "line": 2, "message": "bad model"}])
    df = collect(run_id, results)
    assert (df["error_type"] == "batch_failed").all()
    assert df["error"].str.contains("line 2: bad model").all()


@pytest.mark.slow
def test_failed_requests_are_error_rows_and_retry_sends_them(
    server: Recorder, tmp_path: Path
) -> None:
    results = tmp_path / "r"
    server.script_for("cat", ["400", "400"])
    server.script_for("horse", ["503", "ok"])
    run_id = run(write(tmp_path), server, results, batch=True).attrs["run_id"]
    server.batches.complete()
    df = collect(run_id, results)
    failed = df[df["status"] == "error"].set_index("animal")
    assert set(failed.loc["cat", "error_type"]) == {"bad_request"}
    assert failed.loc["horse", "http_status"] == 503  # one of the two: its next one passed
    assert (df.loc[df["animal"] == "dog", "status"] == "ok").all()
    again = promptgrid.retry(run_id, results_dir=results, progress=False, batch=True)
    assert len(server.uploaded()) == 3 and again.attrs["status"] == "submitted"
    server.batches.complete()
    done = collect(run_id, results)
    assert (done["status"] == "ok").all()
    with Store.in_dir(results, readonly=True) as store:  # every attempt is kept
        assert len(store.attempt_history(run_id)) == 6 + 3


@pytest.mark.slow
def test_a_garbled_answer_is_a_malformed_row(server: Recorder, tmp_path: Path) -> None:
    server.script_for("cat", ["garbage"])
    server.script_for("horse", ["truncated"])
    run_id = run(write(tmp_path), server, tmp_path / "r", batch=True).attrs["run_id"]
    server.batches.complete()
    df = collect(run_id, tmp_path / "r").set_index("animal")
    assert df.loc["cat", "error_type"].iloc[0] == "malformed_response"
    assert df.loc["horse", "error_type"].iloc[0] == "malformed_response"


# --------------------------------------------------------------------------- budget, modes


@pytest.mark.slow
def test_a_budget_submits_only_what_its_worst_case_allows(server: Recorder, tmp_path: Path) -> None:
    results = tmp_path / "r"
    price = table_price("gpt-4o-mini")
    assert price is not None
    path = write(tmp_path, vars={"animal": [f"a{i}" for i in range(10)]})
    with pytest.raises(promptgrid.errors.BudgetExceeded, match="in batches"):
        run(path, server, results, batch=True, max_cost=1e-4)
    with Store.in_dir(results, readonly=True) as store:
        (info,) = store.runs()
    run_id = info.run_id
    assert info.status == "stopped"
    (chunk,) = chunks(results, run_id)
    assert chunk.worst_cost is not None and chunk.worst_cost <= 1e-4
    assert 0 < chunk.requests < 20
    server.batches.complete()
    done = collect(run_id, results)
    assert done["cost_usd"].sum() <= 1e-4
    finished = run(path, server, results, batch=True, resume=True, max_cost=1.0)
    assert finished.attrs["status"] == "submitted"
    server.batches.complete()
    assert len(collect(run_id, results)) == 20


@pytest.mark.slow
def test_collected_answers_with_unbelievable_usage_cost_at_most_their_worst_case(
    server: Recorder, tmp_path: Path
) -> None:
    server.configure(usage={"completion_tokens": 10**12, "prompt_tokens": -5})
    results = tmp_path / "r"
    run_id = run(write(tmp_path), server, results, batch=True, max_cost=1.0).attrs["run_id"]
    server.batches.complete()
    with pytest.warns(promptgrid.errors.PromptgridWarning, match="6 answers had no believable"):
        df = collect(run_id, results)
    paid = df[~df["cached"]]
    assert len(paid) == 6 and paid["prompt_tokens"].isna().all()
    assert paid["completion_tokens"].isna().all()
    (chunk,) = chunks(results, run_id)
    assert chunk.worst_cost is not None
    assert 0 < paid["cost_usd"].sum() <= chunk.worst_cost + 1e-12  # each at its worst case


@pytest.mark.slow
def test_what_collected_batches_cost_stops_the_judges(
    server: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches reserved at the prices of their submission are collected at today's (a newer
    # promptgrid's table): once the spend is past the cap, the judges (online, under the same
    # budget) send nothing.
    server.answer_for("Grade: ", '{"reason": "ok", "verdict": "pass"}')
    judge = {"judge": {"rubric": "Grade: {{ answer }}", "model": "judge-m",
                       "params": {"max_tokens": 20}}}  # fmt: skip
    path = write(
        tmp_path, vars={"animal": ["dog", "cat"]}, scores={"good": judge},
        params={"model": "gpt-4o-mini", "max_tokens": 20},
        pricing={"judge-m": {"input": 0.1, "output": 0.1}},
    )  # fmt: skip
    results = tmp_path / "r"
    run(path, server, results, batch=True, max_cost=0.01)
    server.batches.complete()
    # Ten thousand times dearer now: two answers cost about $0.05 at batch prices.
    monkeypatch.setitem(promptgrid.pricing.TABLE, "gpt-4o-mini", Price(1500, 6000))  # type: ignore[index]
    with pytest.raises(promptgrid.errors.BudgetExceeded):
        run(path, server, results, batch=True, wait=True, resume=True, max_cost=0.01)
    with Store.in_dir(results, readonly=True) as store:
        (info,) = store.runs()
        assert store.counts(info.run_id)["ok"] == 2 and store.spend(info.run_id) > 0.01
        judged = store.db.execute("SELECT COUNT(*) FROM judge_calls").fetchone()[0]
    assert judged == 0 and server.stats()["requests"] == 0  # no judge was asked


@pytest.mark.slow
def test_batch_mode_is_per_provider(server: Recorder, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        providers={"local": {"type": "echo", "models": ["tiny"]},
                   "openai": {"batch": True}},
        params={"model": ["gpt-4o-mini", "tiny"], "max_tokens": 20},
    )  # fmt: skip
    df = run(path, server, tmp_path / "r")  # batch: on the openai provider only
    assert df.attrs["status"] == "submitted"
    assert len(df) == 4 and (df["model"] == "tiny").all()  # echo answered online
    server.batches.complete()
    done = collect(df.attrs["run_id"], tmp_path / "r")
    assert len(done) == 8 and done.loc[done["model"] == "gpt-4o-mini", "batch_id"].notna().all()


@pytest.mark.slow
def test_streamed_requests_cannot_go_in_a_batch(server: Recorder, tmp_path: Path) -> None:
    path = write(tmp_path, params={"model": "gpt-4o-mini", "max_tokens": 20, "stream": True})
    with pytest.raises(UsageError, match="stream"):
        run(path, server, tmp_path / "r", batch=True)


def test_a_vendor_without_a_batch_api_is_refused_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, providers={"m": {"preset": "mistral", "models": ["mistral-small"],
                                            "batch": True}})  # fmt: skip
    with pytest.raises(promptgrid.SpecError, match="Mistral's batch jobs"):
        promptgrid.Experiment.from_yaml(path)


@pytest.mark.slow
async def test_a_stop_while_waiting_leaves_the_run_collectable(
    server: Recorder, tmp_path: Path
) -> None:
    handle = RunHandle()

    def note(text: str) -> None:
        if "submitted" in text:
            handle.stop()  # Ctrl-C once the batch is out

    handle.note = note
    options = RunOptions(results_dir=tmp_path / "r", base_url=server.base_url, batch=True,
                         wait=True, progress=False)  # fmt: skip
    experiment = promptgrid.Experiment.from_yaml(write(tmp_path))
    outcome = await execute(experiment, options, Selection(), handle)
    assert outcome.status == "submitted" and outcome.exit_code == ExitCode.SIGINT
    server.batches.complete()
    done = await execute(experiment, RunOptions(results_dir=tmp_path / "r", progress=False),
                         Selection("collect", outcome.run_id))  # fmt: skip
    assert done.status == "finished" and done.counts["ok"] == 8


# --------------------------------------------------------------------------- the CLI


@pytest.mark.slow
def test_the_cli_submits_follows_and_collects(server: Recorder, tmp_path: Path) -> None:
    path = write(tmp_path)
    results = str(tmp_path / "r")
    runner = CliRunner()
    base = ["--results-dir", results]
    made = runner.invoke(cli, ["run", str(path), "--batch", "--base-url", server.base_url,
                               "--no-progress", *base])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "batches: 1 submitted (6 requests)" in made.output
    assert "collect with: promptgrid batch collect" in made.output
    with Store.in_dir(results, readonly=True) as store:
        run_id = store.runs()[0].run_id

    listed = runner.invoke(cli, ["runs", *base])
    assert "submitted" in listed.output and "1 batch in flight" in listed.output
    shown = runner.invoke(cli, ["batch", "status", *base])
    assert shown.exit_code == 0 and "in_progress" in shown.output

    early = runner.invoke(cli, ["batch", "collect", run_id, "--no-progress", *base])
    assert early.exit_code == ExitCode.PENDING, early.output

    server.batches.complete()
    done = runner.invoke(cli, ["batch", "collect", run_id, "--no-progress", *base])
    assert done.exit_code == 0, done.output
    assert "batches: 1 collected (8 ok, 0 errors" in done.output, done.output
    assert "8 ok, 0 errors, 2 cached of 8 calls" in done.output
    assert "finished" in runner.invoke(cli, ["runs", *base]).output


@pytest.mark.slow
def test_the_cli_cancels(server: Recorder, tmp_path: Path) -> None:
    results = str(tmp_path / "r")
    runner = CliRunner()
    args = ["--base-url", server.base_url, "--no-progress", "--results-dir", results]
    made = runner.invoke(cli, ["run", str(write(tmp_path)), "--batch", *args])
    assert made.exit_code == 0
    with Store.in_dir(results, readonly=True) as store:
        run_id = store.runs()[0].run_id
    cancelled = runner.invoke(cli, ["batch", "cancel", run_id, "--results-dir", results])
    assert cancelled.exit_code == 0 and "cancelling" in cancelled.output
    done = runner.invoke(cli, ["batch", "collect", run_id, "--no-progress",
                               "--results-dir", results])  # fmt: skip
    assert done.exit_code == ExitCode.ERROR_ROWS and "batch_cancelled" in done.output
    again = runner.invoke(cli, ["batch", "cancel", run_id, "--results-dir", results])
    assert again.exit_code == 0, again.output  # a collected run: nothing left to stop
    assert "nothing to cancel: every batch of this run is collected" in again.output


# --------------------------------------------------------------------------- reading lines


def test_output_lines_read_as_completions_or_errors() -> None:
    body = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}  # fmt: skip
    good = {"id": "b1", "custom_id": "a", "response": {"status_code": 200,
            "request_id": "req_1", "body": body}, "error": None}  # fmt: skip
    custom_id, completion = read_line(json.dumps(good).encode(), "chat")
    assert custom_id == "a" and not isinstance(completion, Exception)
    assert completion.text == "hi" and completion.request_id == "req_1"

    error_body = {"error": {"message": "no such model", "code": "model_not_found"}}
    response = {"status_code": 400, "request_id": "req_2", "body": error_body}
    refused = {"custom_id": "b", "response": response}
    _, error = read_line(json.dumps(refused).encode(), "chat")
    assert isinstance(error, BadRequest) and error.http_status == 400
    assert "no such model" in error.message

    for code, kind in (("batch_expired", BatchExpired), ("batch_cancelled", BatchCancelled)):
        line = {"custom_id": "c", "response": None, "error": {"code": code, "message": "x"}}
        assert isinstance(read_line(json.dumps(line).encode(), "chat")[1], kind)

    with pytest.raises(ValueError, match="custom_id"):
        read_line(b'{"response": null}', "chat")


def test_a_body_that_strays_from_openais_shape_is_read_leniently_as_online() -> None:
    # A compatible server's answer: no "object" or "created", an unknown finish reason, no
    # total_tokens. Validation fails; the SDK's lenient construction still reads it.
    body = {"id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "eos",
            "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}  # fmt: skip
    line = {"custom_id": "a", "response": {"status_code": 200, "request_id": "r", "body": body}}
    custom_id, completion = read_line(json.dumps(line).encode(), "chat")
    assert custom_id == "a" and not isinstance(completion, Exception)
    assert (completion.text, completion.finish_reason, completion.prompt_tokens) == ("hi", "eos", 3)


def test_custom_ids_are_found_without_parsing_the_line() -> None:
    line = json.dumps({"id": "x", "response": {"body": {"content": 'say "custom_id": "no"'}},
                       "custom_id": 'a"b'}).encode()  # fmt: skip
    assert custom_id_of(line) == 'a"b'
    assert custom_id_of(b'{"id": 1}') is None


@pytest.mark.slow
def test_the_key_never_reaches_the_store_or_the_files(server: Recorder, tmp_path: Path) -> None:
    results = tmp_path / "r"
    server.script_for("cat", ["401"])
    run_id = run(write(tmp_path), server, results, batch=True).attrs["run_id"]
    server.batches.complete()
    collect(run_id, results, formats="csv,jsonl")
    for file in results.rglob("*"):
        if file.is_file():
            assert KEY.encode() not in file.read_bytes(), file


def test_an_old_store_gains_the_batch_tables(tmp_path: Path) -> None:
    path = tmp_path / "promptgrid.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    from promptgrid.store import MIGRATIONS
    from promptgrid.store.schema import statements

    for name, sql in MIGRATIONS:
        if name == "004_batches":
            continue
        for statement in statements(sql):
            db.execute(statement)
        db.execute("INSERT INTO migrations VALUES (?, '2026')", (name,))
    db.commit()
    db.close()
    with Store(path) as store:
        columns = {r[1] for r in store.db.execute("PRAGMA table_info(results)")}
        assert "batch_id" in columns and batchstore.chunks(store, "none") == []


def test_everything_is_awaited_in_one_loop() -> None:
    # The batch driver's pause wakes at once on a stop, whatever sleep it was given.
    async def main() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        batcher: Any = promptgrid.engine.batch.driver.Batcher.__new__(
            promptgrid.engine.batch.driver.Batcher
        )
        batcher._stopping = asyncio.Event()
        batcher.sleep = asyncio.sleep
        loop.call_later(0.01, batcher._stopping.set)
        await batcher._pause(30)
        return loop.time() - started

    assert asyncio.run(main()) < 5


@pytest.mark.slow
def test_a_collection_cut_short_goes_on_without_duplicates(
    server: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "r"
    monkeypatch.setattr(promptgrid.engine.batch.driver, "COMMIT_ROWS", 2)
    run_id = run(write(tmp_path), server, results, batch=True).attrs["run_id"]
    server.batches.complete()

    class Crash(RuntimeError):
        """The process dies between two commits."""

    real = StoreIO.write
    calls = 0

    async def crashing(self: StoreIO, rows: Any) -> list[int | None]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Crash
        return await real(self, rows)

    monkeypatch.setattr(StoreIO, "write", crashing)
    with pytest.raises(Crash):
        collect(run_id, results)
    assert 0 < len(promptgrid.load(run_id, results_dir=results)) < 8
    monkeypatch.setattr(StoreIO, "write", real)
    done = collect(run_id, results)
    assert len(done) == 8 and (done["status"] == "ok").all() and done["cached"].sum() == 2
    with Store.in_dir(results, readonly=True) as store:
        assert store.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 6
        assert len(store.attempt_history(run_id)) == 6


def test_a_plan_prices_batches_at_batch_prices(tmp_path: Path) -> None:
    path = write(tmp_path, vars={"animal": [f"a{i}" for i in range(50)]})
    online = promptgrid.plan(path, results_dir=tmp_path)
    batched = promptgrid.plan(path, results_dir=tmp_path, batch=True)
    assert online.cost_worst_usd is not None and batched.cost_worst_usd is not None
    assert batched.cost_worst_usd == pytest.approx(online.cost_worst_usd / 2, rel=1e-3)
    assert batched.batch == ["openai"] and "batch prices for openai" in str(batched)


@pytest.mark.slow
def test_scores_are_computed_when_batches_are_collected(server: Recorder, tmp_path: Path) -> None:
    path = write(tmp_path, scores={"echoes": {"starts_with": "echo:"}})
    submitted = run(path, server, tmp_path / "r", batch=True)
    assert submitted.empty
    server.batches.complete()
    done = collect(submitted.attrs["run_id"], tmp_path / "r")
    assert done["score_echoes"].tolist() == [True] * 8


@pytest.mark.slow
def test_the_lease_is_kept_while_waiting_for_batches(
    server: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beats: list[str] = []
    real = promptgrid.store.leases.heartbeat

    def heartbeat(store: Store, owner: Any) -> None:
        beats.append(owner.id)
        real(store, owner)

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0.02)  # a poll every 20 ms: the lease is renewed every 10 ms

    monkeypatch.setattr(promptgrid.store.owners, "HEARTBEAT_S", 0.01)
    monkeypatch.setattr(promptgrid.engine.batch.driver, "SLEEP", sleep)
    monkeypatch.setattr(promptgrid.store.leases, "heartbeat", heartbeat)
    server.configure(batch_complete_after=10)
    df = run(write(tmp_path), server, tmp_path / "r", batch=True, wait=True)
    assert df.attrs["status"] == "finished" and len(beats) >= 5


@pytest.mark.slow
def test_a_fault_server_in_another_process_runs_batches(tmp_path: Path) -> None:
    from promptgrid.testing import spawn_fault_server

    with spawn_fault_server() as remote:
        run_id = run(write(tmp_path), remote, tmp_path / "r", batch=True).attrs["run_id"]
        (batch_id,) = remote.batches.ids()
        remote.batches.progress(batch_id, done=2)
        remote.batches.expire(batch_id)
        assert remote.batches.stats()["created"] == {f"{run_id}/0": 1}
        df = collect(run_id, tmp_path / "r")
    assert (df["status"] == "ok").sum() == 4 and (df["error_type"] == "batch_expired").sum() == 4


@pytest.mark.slow
def test_a_failed_upload_goes_on_against_a_server_that_cannot_list_files(
    server: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "r"
    path = write(tmp_path)
    server.batches.script(["500", "500", "500"], op="upload")  # every attempt of the upload
    with pytest.raises(ProviderError, match="uploading request file"):
        run(path, server, results, batch=True)
    with Store.in_dir(results, readonly=True) as store:
        run_id = store.runs()[0].run_id
    assert [c.state for c in chunks(results, run_id)] == ["uploading"]
    # This server has no GET /v1/files (HTTP 405): the upload cannot be looked for.
    server.batches.script(["405"] * 5, op="files.list")
    capsys.readouterr()
    promptgrid.run(path, base_url=server.base_url, results_dir=results, batch=True)
    err = capsys.readouterr().err
    assert "cannot list its files (HTTP 405)" in err and "uploaded again" in err
    (chunk,) = chunks(results, run_id)
    assert chunk.state == "submitted" and chunk.batch_id
    assert sum(server.batches.stats()["uploads"].values()) == 1
    server.batches.complete()
    assert collect(run_id, results)["status"].eq("ok").all()


@pytest.mark.slow
def test_a_remote_step_is_retried_as_an_online_call_is(
    server: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver's retries are the online calls' (engine.attempts.retrying): the server's
    # retry-after when it sends one, else the same backoff. The waits are recorded, not waited.
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(promptgrid.engine.batch.driver, "SLEEP", sleep)
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the backoff's upper end
    server.configure(retry_after_s=7.0)
    server.batches.script(["429", "429"], op="upload")  # a rate limit, twice
    server.batches.script(["503", "500"], op="create")  # server errors: no retry-after
    path = write(tmp_path, retry={"max_attempts": 3, "max_wait_s": 30.0})
    submitted = run(path, server, tmp_path / "r", batch=True)
    # 7 s as the server asked, twice; then the backoff: BACKOFF_MULTIPLIER_S (1 ms in these
    # tests) x 1, x 2, as online.
    assert submitted.attrs["status"] == "submitted" and waits == [7.0, 7.0, 0.001, 0.002]
    server.batches.complete()
    server.batches.script(["429"], op="content")  # downloads are retried the same way
    assert collect(submitted.attrs["run_id"], tmp_path / "r")["status"].eq("ok").all()
    assert waits[4:] == [7.0]


@pytest.mark.slow
async def test_a_stop_during_a_retry_wait_ends_the_step_there(
    server: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = RunHandle()
    waits: list[float] = []
    woken: list[float] = []

    async def sleep(seconds: float) -> None:  # Ctrl-C while waiting to retry the upload
        waits.append(seconds)
        handle.stop()
        try:
            await asyncio.sleep(5)  # never over: the stop wakes it
        except asyncio.CancelledError:
            woken.append(seconds)
            raise

    monkeypatch.setattr(promptgrid.engine.batch.driver, "SLEEP", sleep)
    server.configure(retry_after_s=30.0)
    server.batches.script(["429"] * 3, op="upload")
    options = RunOptions(results_dir=tmp_path / "r", base_url=server.base_url, batch=True,
                         progress=False)  # fmt: skip
    path = write(tmp_path, retry={"max_attempts": 3, "max_wait_s": 60.0})
    outcome = await execute(promptgrid.Experiment.from_yaml(path), options, Selection(), handle)
    assert waits == woken == [30.0] and outcome.exit_code == ExitCode.SIGINT  # resumable
    assert server.batches.stats()["calls"]["upload"] == 1  # no attempt after the stop
    assert [c.state for c in chunks(tmp_path / "r", outcome.run_id)] == ["uploading"]


@pytest.mark.slow
def test_an_unknown_batch_creation_is_not_repeated_blindly(
    server: Recorder, tmp_path: Path
) -> None:
    results = tmp_path / "r"
    path = write(tmp_path)
    server.batches.script(["500", "500", "500"], op="create")
    with pytest.raises(ProviderError, match="creating the batch"):
        run(path, server, results, batch=True)
    server.batches.script(["405"] * 5, op="list")  # no GET /v1/batches either
    with pytest.raises(ProviderError) as caught:
        run(path, server, results, batch=True)
    message = str(caught.value)
    assert "cannot list its batches (HTTP 405)" in message
    assert "promptgrid batch cancel" in message and "promptgrid retry" in message
    assert server.batches.stats()["created"] == {}
