"""The whole pipeline offline: experiment -> echo -> SQLite -> DataFrame and files."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

import promptgrid
from promptgrid.store import MIGRATIONS, Store
from promptgrid.table import columns

EXPECTED_TAIL = [
    "repeat", "choice", "messages", "response", "finish_reason", "tool_calls", "parsed",
    "parse_error", "refusal", "token_logprobs", "reasoning_summary", "status", "error_type",
    "http_status", "error", "attempts", "prompt_tokens", "completion_tokens", "cached_tokens",
    "reasoning_tokens", "cost_usd", "latency_s", "ttft_s", "tokens_per_s", "resolved_model",
    "request_id", "batch_id", "cached",
]  # fmt: skip


def test_run_returns_one_row_per_cell_in_order(animals: Path, tmp_path: Path) -> None:
    df = promptgrid.run(animals, results_dir=tmp_path / "r")
    assert list(df.columns) == [
        "run_id", "cell_id", "prompt", "animal", "model", "temperature", "max_tokens",
        *EXPECTED_TAIL,
    ]  # fmt: skip
    assert len(df) == 12 and (df["status"] == "ok").all()
    assert list(df["prompt"]) == ["plain"] * 6 + ["terse"] * 6
    assert list(df["animal"][:6]) == ["dog", "dog", "cat", "cat", "horse", "horse"]
    assert list(df["temperature"][:2]) == [0.0, 1.0]
    first = df.iloc[0]
    assert first["response"] == "echo: Please give me five dog names"
    assert json.loads(first["messages"])[0] == {
        "role": "system",
        "content": "You are a helpful assistant.",
    }
    assert first["cost_usd"] == 0.0 and first["attempts"] == 1 and not first["cached"]
    assert df["prompt_tokens"].dtype == "Int64"


def test_files_are_written_per_run(animals: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    df = promptgrid.run(animals, results_dir=out, formats="parquet,csv,xlsx,jsonl")
    run_dir = out / "animals" / df["run_id"][0]
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["results.csv", "results.jsonl", "results.parquet", "results.xlsx"]
    parquet = pq.read_table(run_dir / "results.parquet").to_pandas()
    assert list(parquet["response"]) == list(df["response"])
    csv = pd.read_csv(run_dir / "results.csv")
    assert list(csv.columns) == list(df.columns) and len(csv) == 12
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert json.loads(lines[3])["cell_id"] == df["cell_id"][3]
    book = load_workbook(run_dir / "results.xlsx", read_only=True)
    try:
        rows = list(book["results"].values)
    finally:
        book.close()  # a read-only book keeps its file open until closed
    assert sorted(rows[0]) == sorted(df.columns) and len(rows) == 13  # inputs first: see test_xlsx
    assert list(rows[0][:4]) == ["prompt", "animal", "temperature", "response"]


def test_second_run_is_answered_from_the_cache(animals: Path, tmp_path: Path) -> None:
    first = promptgrid.run(animals, results_dir=tmp_path)
    second = promptgrid.run(animals, results_dir=tmp_path)
    assert first["run_id"][0] != second["run_id"][0]
    assert second["cached"].all() and (second["cost_usd"] == 0).all()
    assert list(second["response"]) == list(first["response"])
    fresh = promptgrid.run(animals, results_dir=tmp_path, use_cache=False)
    assert not fresh["cached"].any()


def test_identical_cells_are_sent_once(tmp_path: Path) -> None:
    exp = promptgrid.Experiment(
        prompts={"p": "always the same"}, vars={"label": ["a", "b", "c"]},
        params={"model": "m"}, provider="echo",
    )  # fmt: skip
    df = promptgrid.run(exp, results_dir=tmp_path)
    assert len(df) == 3 and df["cell_id"].nunique() == 1
    assert list(df["cached"]) == [False, True, True]
    with closing(sqlite3.connect(tmp_path / "promptgrid.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1


def test_repeats_are_distinct_cells(tmp_path: Path) -> None:
    exp = promptgrid.Experiment(
        prompts={"p": "hi"}, params={"model": "m"}, provider="echo", repeats=3
    )
    df = promptgrid.run(exp, results_dir=tmp_path)
    assert list(df["repeat"]) == [0, 1, 2] and df["cell_id"].nunique() == 3


def test_store_schema_and_migrations(animals: Path, tmp_path: Path) -> None:
    promptgrid.run(animals, results_dir=tmp_path)
    db = sqlite3.connect(tmp_path / "promptgrid.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = [name for (name,) in db.execute("SELECT name FROM migrations")]
    assert applied[:2] == ["001_initial", "002_leases_claims"]
    assert applied == [name for name, _ in MIGRATIONS]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ((status, total),) = db.execute("SELECT status, total FROM runs").fetchall()
    assert (status, total) == ("finished", 12)
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 12
    db.close()
    with Store.in_dir(tmp_path) as store:  # reopening applies nothing twice
        assert len(store.runs()) == 1


def test_store_from_the_future_is_refused(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        store.db.execute("INSERT INTO migrations VALUES ('999_future', 'x')")
    with pytest.raises(promptgrid.StoreError, match="newer promptgrid"):
        Store.in_dir(tmp_path)


def test_load_latest_and_by_prefix(animals: Path, tmp_path: Path) -> None:
    df = promptgrid.run(animals, results_dir=tmp_path)
    run_id = df["run_id"][0]
    assert promptgrid.load(results_dir=tmp_path)["run_id"][0] == run_id
    assert len(promptgrid.load(run_id[:15], results_dir=tmp_path)) == 12
    with pytest.raises(promptgrid.UsageError, match="no run"):
        promptgrid.load("nope", results_dir=tmp_path)


def test_mixed_type_vars_become_json_text(tmp_path: Path) -> None:
    exp = promptgrid.Experiment(
        prompts={"p": "{{ x }}"}, vars={"x": [1, "two", {"three": 3}]},
        params={"model": "m"}, provider="echo",
    )  # fmt: skip
    df = promptgrid.run(exp, results_dir=tmp_path, formats="parquet")
    assert list(df["x"]) == ["1", '"two"', '{"three":3}']


def test_columns_of_a_run_follow_the_spec(animals: Path, tmp_path: Path) -> None:
    promptgrid.run(animals, results_dir=tmp_path)
    with Store.in_dir(tmp_path) as store:
        names = [name for name, _ in columns(store.runs()[0])]
    assert names[3:7] == ["animal", "model", "temperature", "max_tokens"]


def test_plan_counts_axes_and_cache(animals: Path, tmp_path: Path) -> None:
    plan = promptgrid.plan(animals, results_dir=tmp_path)
    assert plan.axes == {"prompt": 2, "animal": 3, "temperature": 2, "repeat": 1}
    assert (plan.total, plan.cached, plan.to_send) == (12, 0, 12)
    promptgrid.run(animals, results_dir=tmp_path)
    plan = promptgrid.plan(animals, results_dir=tmp_path)
    assert (plan.cached, plan.to_send) == (12, 0)
    assert "total calls" in str(plan)


def test_plan_rejects_requests_larger_than_the_token_bucket(write_yaml, tmp_path: Path) -> None:
    path = write_yaml(
        "prompts: {p: hi}\nprovider: echo\nparams: {model: m, max_tokens: 5000}\n"
        "limits: {tpm: 1000}\n"
    )
    with pytest.raises(promptgrid.SpecError, match="more than the whole tpm limit"):
        promptgrid.plan(path, results_dir=tmp_path)


def test_unknown_run_option_is_pythons_own_type_error(animals: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="concurency"):
        promptgrid.run(animals, results_dir=tmp_path, concurency=3)  # type: ignore[call-arg]


def test_public_namespace_is_complete() -> None:
    for name in promptgrid.__all__:
        assert getattr(promptgrid, name) is not None
    assert promptgrid.__all__ == sorted(promptgrid.__all__)


async def test_arun_inside_a_running_loop(animals: Path, tmp_path: Path) -> None:
    df = await promptgrid.arun(animals, results_dir=tmp_path)
    assert len(df) == 12
    df = promptgrid.run(animals, results_dir=tmp_path)  # run() from inside a loop too
    assert df["cached"].all()


EXAMPLES = Path(__file__).resolve().parent.parent / "experiments"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
@pytest.mark.slow
def test_example_experiments_run_offline(path: Path, tmp_path: Path) -> None:
    df = promptgrid.run(path.resolve(), provider="echo", results_dir=tmp_path, progress=False)
    cells = int((df["choice"] == 0).sum())  # a request with n > 1 has a row per choice
    race = promptgrid.standings(results_dir=tmp_path)
    if race is not None:  # a raced experiment runs what its race needs: a finished race
        assert race.record.finished and cells == race.calls < race.grid_calls
    else:
        assert cells == promptgrid.Experiment.from_yaml(path).total
    assert (df["status"] == "ok").all()


def test_a_template_failing_at_render_time_marks_the_run_failed(tmp_path: Path) -> None:
    # Validation renders the first row (x=1); the second (x=0) fails only at run time.
    exp = promptgrid.Experiment(
        prompts={"p": "{{ 10 // x }}"}, vars={"x": [1, 0]}, params={"model": "m"},
        provider="echo",
    )  # fmt: skip
    with pytest.raises(promptgrid.SpecError, match="failed to render"):
        promptgrid.run(exp, results_dir=tmp_path, progress=False)
    with Store.in_dir(tmp_path) as store:
        assert store.runs()[0].status == "failed"
