"""Run against run (``compare(df_a, df_b)``) and tables in the terminal, fitted to the width."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from rich.console import Console

import promptgrid
from promptgrid.analysis import align
from promptgrid.cli import cli
from promptgrid.errors import UsageError
from promptgrid.terminal import print_frame

ANIMALS: dict[str, Any] = {
    "name": "animals",
    "provider": "echo",
    "prompts": {"plain": "Please give me five {{ animal }} names", "terse": "List {{ animal }}s."},
    "vars": {"animal": ["dog", "cat", "horse"]},
    "params": {"model": "gpt-4o-mini", "temperature": [0.0, 1.0]},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


def run(results: Path, **fields: Any) -> pd.DataFrame:
    return promptgrid.run({**ANIMALS, **fields}, results_dir=results, progress=False)


@pytest.fixture(scope="module")
def base(results: Path) -> pd.DataFrame:
    return run(results)


# ---------------------------------------------------------------------------- alignment


def test_a_changed_model_is_left_out_and_named(base: pd.DataFrame, results: Path) -> None:
    other = run(results, params={"model": "gpt-4.1-nano", "temperature": [0.0, 1.0]})
    table = promptgrid.compare(base, other)
    assert list(table.index.names) == ["prompt", "animal", "temperature"] and len(table) == 12
    assert list(table.columns) == [base["run_id"][0], other["run_id"][0], "changed"]
    assert table.attrs["changed"] == {"model": [["gpt-4o-mini"], ["gpt-4.1-nano"]]}
    assert not table["changed"].any()  # echo answers do not depend on the model


def test_changed_only_keeps_the_calls_whose_answers_differ(
    base: pd.DataFrame, results: Path
) -> None:
    other = run(results, prompts={**ANIMALS["prompts"], "terse": "Name {{ animal }}s."})
    table = promptgrid.compare(base, other, changed_only=True)
    assert len(table) == 6
    assert set(table.index.get_level_values("prompt")) == {"terse"}
    row = table.loc[("terse", "dog", 0.0)]
    assert row.iloc[0] == "echo: List dogs." and row.iloc[1] == "echo: Name dogs."


def test_calls_on_one_side_only_count_as_changed(base: pd.DataFrame, results: Path) -> None:
    other = run(results, vars={"animal": ["dog", "cat", "horse", "cow"]})
    table = promptgrid.compare(base, other)
    assert len(table) == 16
    only_b = table[table.iloc[:, 0].isna()]
    assert set(only_b.index.get_level_values("animal")) == {"cow"} and only_b["changed"].all()


def test_numbers_align_as_numbers_and_disjoint_values_pair_in_order(base: pd.DataFrame) -> None:
    ints = base.assign(temperature=base["temperature"].astype(int), run_id="b")
    assert align([base, ints]).keys == ["prompt", "animal", "temperature"]  # 0 meets 0.0
    moved = base.assign(temperature=base["temperature"] + 0.5, run_id="c")
    alignment = align([base, moved])
    assert alignment.keys == ["prompt", "animal"] and "temperature" in alignment.changed
    assert list(alignment.rows[0]) == list(alignment.rows[1])  # the n-th meets the n-th


def test_compare_keeps_its_one_table_form_and_refuses_mixed_arguments(
    base: pd.DataFrame,
) -> None:
    assert promptgrid.compare(base).shape == (3, 4)
    with pytest.raises(UsageError):
        promptgrid.compare(base, base, cols=["prompt"])  # type: ignore[call-overload]
    with pytest.raises(UsageError):
        promptgrid.compare(base, changed_only=True)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------- terminal


def rendered(frame: pd.DataFrame, width: int, **options: Any) -> list[str]:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    print_frame(frame, console, **options)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [60, 100, 160])
def test_compare_fits_the_width_and_wraps_answers(base: pd.DataFrame, width: int) -> None:
    lines = rendered(promptgrid.compare(base), width)
    assert max(len(line.rstrip()) for line in lines) <= width
    text = "\n".join(lines)
    assert "temperature = 0.0" in text and "…" not in text  # wrapped, never cut
    for word in ["echo:", "Please", "give", "me", "five", "horse", "names"]:
        assert word in text


def test_narrow_terminals_get_column_groups_that_repeat_the_labels(base: pd.DataFrame) -> None:
    lines = rendered(promptgrid.compare(base), 60, title="animals")
    titles = [line for line in lines if line.startswith("animals (columns")]
    assert len(titles) >= 2 and titles[0].startswith("animals (columns 1–")
    assert sum(line.startswith("│ dog    │") for line in lines) == len(titles)  # labels repeat
    assert len(rendered(promptgrid.compare(base), 200)[0].split("(columns")) == 1  # one table


def test_show_keeps_short_columns_whole(base: pd.DataFrame) -> None:
    lines = rendered(promptgrid.varying(base), 70, index=False, max_rows=2)
    assert max(len(line.rstrip()) for line in lines) <= 70
    assert "temperature" in lines[1] and lines[-1] == "... 10 more rows"


def test_cli_compare_and_show_fit_the_terminal(base: pd.DataFrame, results: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "72"})
    run_id = str(base["run_id"][0])
    for args in (["compare", run_id], ["show", run_id], ["compare", run_id, "--rows", "prompt"]):
        done = runner.invoke(cli, [*args, "--results-dir", str(results)])
        assert done.exit_code == 0, done.output
        assert max(len(line) for line in done.output.splitlines()) <= 72


def test_cli_compares_two_runs_and_names_what_changed(base: pd.DataFrame, results: Path) -> None:
    other = run(results, params={"model": "gpt-4.1-nano", "temperature": [0.0, 1.0]},
                prompts={**ANIMALS["prompts"], "terse": "Name {{ animal }}s."})  # fmt: skip
    a, b = str(base["run_id"][0]), str(other["run_id"][0])
    runner = CliRunner(env={"COLUMNS": "120"})
    done = runner.invoke(cli, ["compare", a, b, "--changed-only", "--results-dir", str(results)])
    assert done.exit_code == 0, done.output
    assert "changed: model: gpt-4o-mini -> gpt-4.1-nano" in done.output
    assert done.output.count("≠") == 6 and "echo: Name dogs." in done.output
