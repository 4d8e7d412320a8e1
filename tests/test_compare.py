"""compare, varying and summary on tables from real echo runs."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

import promptgrid
from promptgrid.analysis import comparison
from promptgrid.analysis.comparison import SEPARATOR, WrappedFrame, input_columns

ANIMALS = {
    "name": "animals",
    "provider": "echo",
    "prompts": {
        "plain": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Please give me five {{ animal }} names"},
        ],
        "terse": "List five {{ animal }} names.",
    },
    "vars": {"animal": ["dog", "cat", "horse"]},
    "params": {"model": "gpt-4o-mini", "temperature": [0.0, 1.0], "max_tokens": 50},
}


def run(tmp: Path, **fields: object) -> pd.DataFrame:
    return promptgrid.run(promptgrid.Experiment(**{**ANIMALS, **fields}), results_dir=tmp)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def animals(results: Path) -> pd.DataFrame:
    """12 rows: prompt (2) x animal (3) x temperature (2)."""
    return run(results)


@pytest.fixture(scope="module")
def repeated(results: Path) -> pd.DataFrame:
    """Two animals, one temperature, two repeats, two models."""
    return run(
        results,
        name="repeated",
        vars={"animal": ["dog", "cat"]},
        params={"model": ["gpt-4o-mini", "gpt-4.1-nano"], "temperature": 1.0},
        repeats=2,
    )


@pytest.fixture(scope="module")
def failing(results: Path) -> pd.DataFrame:
    """The long prompt can never pass a 100-token-per-minute limit: two error rows."""
    return run(
        results,
        name="failing",
        prompts={"short": "Hi {{ animal }}", "long": "Hi {{ animal }} " + "word " * 200},
        vars={"animal": ["dog", "cat"]},
        params={"model": "m", "max_tokens": 10},
        limits={"tpm": 100},
    )


def response(df: pd.DataFrame, **where: object) -> str:
    rows = df
    for name, value in where.items():
        rows = rows[rows[name] == value]
    assert len(rows) == 1
    return str(rows["response"].iloc[0])


# ---------------------------------------------------------------------------- compare


def test_compare_defaults_put_vars_down_and_prompt_and_params_across(
    animals: pd.DataFrame,
) -> None:
    table = promptgrid.compare(animals)
    assert isinstance(table, WrappedFrame)
    assert list(table.index) == ["dog", "cat", "horse"]  # grid order, not sorted
    assert table.index.name == "animal"
    assert list(table.columns) == [("plain", 0.0), ("plain", 1.0), ("terse", 0.0), ("terse", 1.0)]
    assert list(table.columns.names) == ["prompt", "temperature"]
    assert table.loc["cat", ("terse", 1.0)] == response(
        animals, animal="cat", prompt="terse", temperature=1.0
    )
    assert table.loc["cat", ("terse", 1.0)] == "echo: List five cat names."


@pytest.mark.parametrize(
    ("rows", "cols", "index_names", "column_names", "shape"),
    [
        pytest.param(["animal", "temperature"], ["prompt"], ["animal", "temperature"],
                     ["prompt"], (6, 2), id="both-given"),
        pytest.param(["prompt"], None, ["prompt"], ["animal", "temperature"], (2, 6),
                     id="rows-given-cols-take-the-rest"),
        pytest.param(None, ["animal"], ["prompt", "temperature"], ["animal"], (4, 3),
                     id="cols-given-rows-take-the-rest"),
    ],
)  # fmt: skip
def test_compare_layouts(
    animals: pd.DataFrame,
    rows: list[str] | None,
    cols: list[str] | None,
    index_names: list[str],
    column_names: list[str],
    shape: tuple[int, int],
) -> None:
    table = promptgrid.compare(animals, rows=rows, cols=cols)
    assert list(table.index.names) == index_names
    assert list(table.columns.names) == column_names
    assert table.shape == shape
    assert table.notna().all().all()  # every cell holds exactly one answer


def test_compare_joins_repeats_in_one_cell_unless_repeat_is_an_axis(
    repeated: pd.DataFrame,
) -> None:
    table = promptgrid.compare(repeated)
    assert list(table.columns) == [("plain", "gpt-4o-mini"), ("plain", "gpt-4.1-nano"),
                                   ("terse", "gpt-4o-mini"), ("terse", "gpt-4.1-nano")]  # fmt: skip
    one = response(repeated, animal="dog", prompt="terse", model="gpt-4.1-nano", repeat=0)
    assert table.loc["dog", ("terse", "gpt-4.1-nano")] == one + SEPARATOR + one

    split = promptgrid.compare(repeated, cols=["prompt", "model", "repeat"])
    assert split.shape == (2, 8)
    assert split.loc["dog", ("terse", "gpt-4.1-nano", 1)] == one

    first = promptgrid.compare(repeated, aggfunc="first")
    assert first.loc["dog", ("terse", "gpt-4.1-nano")] == one


def test_compare_numbers_are_averaged(repeated: pd.DataFrame) -> None:
    table = promptgrid.compare(repeated, values="completion_tokens")
    rows = repeated[(repeated["animal"] == "cat") & (repeated["prompt"] == "plain")
                    & (repeated["model"] == "gpt-4o-mini")]  # fmt: skip
    assert table.loc["cat", ("plain", "gpt-4o-mini")] == rows["completion_tokens"].mean()


def test_compare_without_vars_puts_the_prompt_down_the_side(results: Path) -> None:
    df = run(results, name="no-vars", prompts={"a": "Name a dog", "b": "Name a cat"}, vars={},
             params={"model": ["gpt-4o-mini", "gpt-4.1-nano"]})  # fmt: skip
    table = promptgrid.compare(df)
    assert list(table.index) == ["a", "b"] and table.index.name == "prompt"
    assert list(table.columns) == ["gpt-4o-mini", "gpt-4.1-nano"]
    assert table.loc["b", "gpt-4.1-nano"] == "echo: Name a cat"


def test_compare_with_nothing_varying_is_one_row(results: Path) -> None:
    df = run(results, name="single", prompts={"only": "Name a dog"}, vars={},
             params={"model": "gpt-4o-mini"})  # fmt: skip
    table = promptgrid.compare(df)
    assert table.shape == (1, 1)
    assert table.iloc[0, 0] == "echo: Name a dog"


def test_compare_shows_the_error_of_a_failed_call(failing: pd.DataFrame) -> None:
    table = promptgrid.compare(failing)
    assert table.loc["dog", "short"] == "echo: Hi dog"
    cell = table.loc["dog", "long"]
    assert cell.startswith("[bad_request] ") and "tokens" in cell


def test_compare_across_runs_adds_a_run_column(results: Path, animals: pd.DataFrame) -> None:
    other = run(results, params={**ANIMALS["params"], "max_tokens": 3})  # type: ignore[dict-item]
    both = pd.concat([animals, other], ignore_index=True)
    table = promptgrid.compare(both)
    assert list(table.columns.names) == ["run_id", "prompt", "temperature", "max_tokens"]
    assert table.shape == (3, 8)
    assert table.loc["dog", (other["run_id"][0], "plain", 0.0, 3)] == "echo: Please"
    assert set(promptgrid.summary(both).index.names) == {"run_id", "prompt", "max_tokens",
                                                         "temperature"}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"rows": ["animl"]}, "no column 'animl'", id="unknown-row"),
        pytest.param({"values": "answer"}, "no column 'answer'", id="unknown-values"),
        pytest.param({"rows": ["animal"], "cols": ["animal"]}, "both as rows and as cols",
                     id="overlap"),
    ],
)  # fmt: skip
def test_compare_rejects_bad_arguments(
    animals: pd.DataFrame, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(promptgrid.UsageError, match=message):
        promptgrid.compare(animals, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- varying


def test_varying_keeps_the_inputs_that_vary_and_the_response(animals: pd.DataFrame) -> None:
    table = promptgrid.varying(animals)
    assert isinstance(table, WrappedFrame)
    assert list(table.columns) == ["prompt", "animal", "temperature", "response"]
    assert table.index.equals(animals.index)
    assert list(table["response"]) == list(animals["response"])


def test_varying_adds_repeat_error_and_extra_columns(
    repeated: pd.DataFrame, failing: pd.DataFrame
) -> None:
    assert list(promptgrid.varying(repeated).columns) == [
        "prompt", "animal", "model", "repeat", "response"
    ]  # fmt: skip
    assert list(promptgrid.varying(failing, also=["latency_s"]).columns) == [
        "prompt", "animal", "response", "error", "latency_s"
    ]  # fmt: skip


def test_columns_added_after_the_results_are_not_inputs(animals: pd.DataFrame) -> None:
    scored = animals.assign(length=animals["response"].str.len())
    assert "length" not in input_columns(scored)
    assert list(promptgrid.compare(scored).columns.names) == ["prompt", "temperature"]
    assert "length" not in promptgrid.varying(scored).columns
    assert list(promptgrid.summary(scored).index.names) == ["prompt", "temperature"]


# ---------------------------------------------------------------------------- summary


def test_summary_per_prompt_and_varying_param(animals: pd.DataFrame) -> None:
    table = promptgrid.summary(animals)
    assert list(table.index.names) == ["prompt", "temperature"]
    assert list(table.index) == [("plain", 0.0), ("plain", 1.0), ("terse", 0.0), ("terse", 1.0)]
    assert list(table.columns) == [
        "calls", "errors", "error_rate", "cached", "latency_s", "prompt_tokens",
        "completion_tokens", "cost_usd",
    ]  # fmt: skip
    row = table.loc[("terse", 1.0)]
    group = animals[(animals["prompt"] == "terse") & (animals["temperature"] == 1.0)]
    assert (row["calls"], row["errors"], row["error_rate"]) == (3, 0, 0.0)
    assert row["prompt_tokens"] == group["prompt_tokens"].sum()
    assert row["completion_tokens"] == group["completion_tokens"].sum()
    assert row["cost_usd"] == 0.0
    assert math.isclose(row["latency_s"], group["latency_s"].mean())


def test_summary_counts_errors_and_whole_table(failing: pd.DataFrame) -> None:
    table = promptgrid.summary(failing)
    assert table.loc["long", "errors"] == 2 and table.loc["long", "error_rate"] == 1.0
    assert table.loc["short", "errors"] == 0
    assert pd.isna(table.loc["long", "completion_tokens"])  # no usage reported: unknown, not 0
    whole = promptgrid.summary(failing, by=[])
    assert len(whole) == 1
    assert (whole["calls"].iloc[0], whole["errors"].iloc[0]) == (4, 2)
    assert whole["error_rate"].iloc[0] == 0.5


def test_summary_leaves_cached_rows_out_of_latency(results: Path) -> None:
    first = run(results, name="cache-check")
    again = run(results, name="cache-check")
    assert again["cached"].all()
    table = promptgrid.summary(again, by=["prompt"])
    assert list(table["cached"]) == [6, 6]
    assert table["latency_s"].isna().all()
    assert list(table["cost_usd"]) == [0.0, 0.0]
    assert table["prompt_tokens"].sum() == first["prompt_tokens"].sum()


# ---------------------------------------------------------------------------- rendering


def test_notebook_rendering_wraps_whole_text_and_escapes_it(animals: pd.DataFrame) -> None:
    df = animals.copy()
    df.loc[0, "response"] = "<b>Rex</b>\nFido " + "x" * 300
    html = promptgrid.varying(df)._repr_html_()
    assert html is not None
    assert "white-space:pre-wrap" in html
    assert "&lt;b&gt;Rex&lt;/b&gt;\nFido " + "x" * 300 in html  # escaped, whole, newline kept
    assert "<b>Rex" not in html
    assert ">0.0<" in html and ">1.0<" in html  # floats as pandas prints them


def test_wrapped_frame_stays_wrapped_and_is_a_dataframe(animals: pd.DataFrame) -> None:
    table = promptgrid.varying(animals)
    assert isinstance(table.head(3), WrappedFrame)
    assert isinstance(table.sort_values("animal"), WrappedFrame)
    assert isinstance(table, pd.DataFrame)
    assert table.equals(animals[["prompt", "animal", "temperature", "response"]])


def test_notebook_rendering_of_a_long_table_is_cut(animals: pd.DataFrame) -> None:
    long = WrappedFrame(pd.concat([animals] * 10, ignore_index=True))
    with pd.option_context("display.max_rows", 20, "display.min_rows", 4):
        html = long._repr_html_()
    assert html is not None
    assert "showing the first 4 of 120 rows" in html
    assert html.count("<tr>") < 10
    with pd.option_context("display.notebook_repr_html", False):
        assert long._repr_html_() is None


@pytest.mark.parametrize(
    "refusal",
    [
        # pandas >= 2.3 (the accessor), and pandas 2.2 (importing the Styler).
        pytest.param(AttributeError("The '.style' accessor requires jinja2"), id="pandas-2.3+"),
        pytest.param(
            ImportError("Pandas requires version '3.1.2' or newer of 'jinja2' (version '3.1.0' "
                        "currently installed)."),
            id="pandas-2.2",
        ),
    ],
)  # fmt: skip
def test_without_a_usable_styler_the_plain_table_comes_with_one_warning(
    animals: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    def refuse(self: pd.DataFrame) -> None:
        raise refusal

    monkeypatch.setattr(pd.DataFrame, "style", property(refuse))
    monkeypatch.setattr(comparison, "_styler_warned", False)
    table = promptgrid.varying(animals)
    with pytest.warns(UserWarning) as caught:
        html = table._repr_html_()
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith("promptgrid: notebook tables need jinja2>=")
    assert "is installed" in message and str(refusal) in message
    assert "showing pandas' plain table" in message
    assert warning.filename == __file__  # points at the caller, not at promptgrid
    assert html is not None and "<table" in html and "white-space:pre-wrap" not in html
    assert "echo: Please give me five dog names" in html  # the data is all there
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: the next table is quiet
        assert table.head(2)._repr_html_() is not None


def test_the_styler_requirement_is_the_declared_jinja2_floor() -> None:
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'"(jinja2>=[0-9.]+)"', pyproject)
    assert declared is not None and declared[1] == comparison.STYLER_NEEDS


# ---------------------------------------------------------------------------- what an answer shows

CALLS = json.dumps([{"id": "c1", "type": "function", "name": "get_weather",
                     "arguments": '{"city": "Paris", "days": 3}'}])  # fmt: skip


def test_a_hand_built_table_takes_its_inputs_by_name() -> None:
    """No ``repeat`` column: the score is not taken for an input (it was a row axis)."""
    df = pd.DataFrame({"prompt": ["a", "b", "a", "b"], "country": ["fr", "fr", "jp", "jp"],
                       "response": ["1", "2", "3", "4"],
                       "score_correct": [True, False, True, True]})  # fmt: skip
    assert input_columns(df) == ["prompt", "country"]
    table = promptgrid.compare(df)
    assert list(table.index) == ["fr", "jp"] and list(table.columns) == ["a", "b"]


def test_tool_calls_refusals_and_parse_errors_show_in_compare() -> None:
    df = pd.DataFrame({
        "prompt": ["tools", "refuses", "structured", "empty"],
        "response": [None, None, '{"legs": 4', None],
        "tool_calls": [CALLS, None, None, None],
        "refusal": [None, "I cannot help", None, None],
        "parsed": [None, None, None, '{"name":"Rex","legs":4}'],
        "parse_error": [None, None, "Expecting ',' delimiter", None],
        "status": ["ok"] * 4,
    })  # fmt: skip
    table = promptgrid.compare(df, rows=[], cols=["prompt"])
    assert table.iloc[0].tolist() == [
        '→ get_weather(city="Paris", days=3)',
        "[refused] I cannot help",
        "{\"legs\": 4\n[not JSON: Expecting ',' delimiter]",
        '{"name": "Rex", "legs": 4}',
    ]


def test_tool_call_text_takes_anything_a_server_sends() -> None:
    from promptgrid.analysis.answers import MAX_ARGUMENTS, tool_calls_text

    assert tool_calls_text("not json") == "→ not json"
    assert tool_calls_text('{"a": 1}') == '→ {"a": 1}'
    assert tool_calls_text('[{"name": "f", "arguments": "{broken"}, 3]') == "→ f({broken)\n→ 3"
    assert tool_calls_text('[{"type": "custom", "name": "g", "input": "x"}]') == "→ g(x)"
    long = tool_calls_text(json.dumps([{"name": "f", "arguments": json.dumps({"t": "x" * 999})}]))
    assert len(long) == len("→ f()") + MAX_ARGUMENTS and long.endswith("…)")
    assert tool_calls_text(None) == ""


def test_score_marks_name_each_score_and_say_pass_fail_or_its_value() -> None:
    from promptgrid.analysis.answers import score_marks

    df = pd.DataFrame({
        "response": ["x", "y", None],
        "status": ["ok", "ok", "error"],
        "score_correct": pd.array([True, None, False], dtype="boolean"),
        "score_quality": [4, 2, None],
        "score_quality.reason": ["good", "bad", None],
        "score_errors": [None, '{"correct": "timeout"}', None],
    })  # fmt: skip
    marks = [[(m.text, m.state) for m in row] for row in score_marks(df)]
    assert marks == [
        [("✓ correct", "pass"), ("quality 4", "value")],
        [("correct –", "none"), ("quality 2", "value")],
        [],  # a failed call shows its error, not scores
    ]
