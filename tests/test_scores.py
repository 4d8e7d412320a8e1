"""Scores: every deterministic kind, templated expected values, python: scorers, validation
with file:line, and scores as columns of a run's table and files (NA for error rows)."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import promptgrid
from promptgrid.cli import main
from promptgrid.scoring.checks import ScoreFailure, evaluate
from promptgrid.testing import FaultServer

CASE = {"country": "France", "expected": "Paris", "n": 3}


def _score(spec: dict[str, Any], tmp_path: Path | None = None) -> Any:
    exp = promptgrid.Experiment(
        prompts={"p": "Capital of {{ country }}?"},
        cases=[CASE],
        params={"model": "m"},
        provider="echo",
        scores={"s": spec},
        base_dir=tmp_path,
    )
    return exp.scores[0]


@pytest.mark.parametrize(
    ("spec", "answer", "expected"),
    [
        pytest.param({"equals": "Paris"}, " Paris\n", True, id="equals-strips"),
        pytest.param({"equals": "Paris", "strip": False}, " Paris", False, id="equals-exact"),
        pytest.param({"equals": "paris"}, "Paris", False, id="equals-case"),
        pytest.param({"equals": "paris", "ignore_case": True}, "PARIS", True, id="equals-nocase"),
        pytest.param({"equals": 3}, "3", True, id="equals-number-as-text"),
        pytest.param({"equals": "{{ expected }}"}, "Paris", True, id="equals-template"),
        pytest.param({"contains": "{{ expected }}"}, "It is Paris.", True, id="contains"),
        pytest.param({"contains": "{{ expected }}"}, "It is paris.", False, id="contains-case"),
        pytest.param({"not_contains": "sorry"}, "Paris", True, id="not-contains"),
        pytest.param({"not_contains": "sorry"}, "sorry, no", False, id="not-contains-fails"),
        pytest.param({"icontains": "{{ expected }}"}, "PARIS!", True, id="icontains"),
        pytest.param({"starts_with": "{{ expected }}"}, "Paris, of course", True, id="starts"),
        pytest.param({"starts_with": "Paris"}, "It is Paris", False, id="starts-fails"),
        pytest.param({"regex": r"^\d{4}-\d{2}$"}, "2024-05", True, id="regex"),
        pytest.param({"regex": r"^\d{4}$"}, "2024-05", False, id="regex-anchored"),
        pytest.param({"regex": "^{{ expected }}$"}, "Paris", True, id="regex-template"),
        pytest.param({"regex": "paris", "ignore_case": True}, "PARIS", True, id="regex-nocase"),
        pytest.param({"one_of": ["positive", "negative"]}, "negative", True, id="one-of"),
        pytest.param({"one_of": ["positive", "negative"]}, "neutral", False, id="one-of-fails"),
        pytest.param({"one_of": ["A", "B"], "ignore_case": True}, "b", True, id="one-of-nocase"),
        pytest.param({"is_json": True}, '{"a": 1}', True, id="is-json"),
        pytest.param({"is_json": True}, "{'a': 1}", False, id="is-json-fails"),
        pytest.param(
            {"json_schema": {"type": "object", "required": ["city"]}},
            '{"city": "Paris"}',
            True,
            id="json-schema",
        ),
        pytest.param(
            {"json_schema": {"type": "object", "required": ["city"]}},
            '{"town": "Paris"}',
            False,
            id="json-schema-fails",
        ),
        pytest.param({"json_schema": {"type": "object"}}, "Paris", False, id="json-schema-text"),
        pytest.param(
            {"json_path": {"path": "$.city", "equals": "{{ expected }}"}},
            '{"city": "Paris"}',
            True,
            id="json-path-template",
        ),
        pytest.param(
            {"json_path": {"path": "$.items[1]['n']", "equals": "{{ n }}"}},
            '{"items": [{"n": 1}, {"n": 3}]}',
            True,
            id="json-path-number-as-text",
        ),
        pytest.param(
            {"json_path": {"path": "$.ok", "equals": True}}, '{"ok": 1}', False, id="json-path-type"
        ),
        pytest.param(
            {"json_path": {"path": "$.a.b", "equals": 1}}, '{"a": [1]}', False, id="json-path-miss"
        ),
        pytest.param({"min_length": 5}, "Paris", True, id="min-length"),
        pytest.param({"min_length": 6}, "Paris", False, id="min-length-fails"),
        pytest.param({"max_length": 5}, "  Paris  ", True, id="max-length-strips"),
        pytest.param({"max_length": 4}, "Paris", False, id="max-length-fails"),
        pytest.param({"close_to": {"value": 3.14, "tolerance": 0.01}}, "3.141", True, id="close"),
        pytest.param({"close_to": {"value": 3.14, "tolerance": 0.0001}}, "3.15", False, id="far"),
        pytest.param({"close_to": {"value": "{{ n }}"}}, "3.0", True, id="close-template"),
        pytest.param({"close_to": {"value": 100, "relative": 0.05}}, "104", True, id="relative"),
        pytest.param({"close_to": {"value": 3}}, "three", False, id="close-not-a-number"),
    ],
)
def test_deterministic_scores(spec: dict[str, Any], answer: str, expected: bool) -> None:
    assert evaluate(_score(spec), answer, CASE) is expected


def test_a_template_that_fails_for_one_row_is_that_rows_error() -> None:
    score = _score({"contains": "{{ expected.upper() }}"})
    assert evaluate(score, "PARIS", CASE) is True
    with pytest.raises(ScoreFailure, match="failed to render"):
        evaluate(score, "x", {"expected": None, "country": "x", "n": 1})


def test_a_templated_regex_that_does_not_compile_for_one_row_is_that_rows_error() -> None:
    score = _score({"regex": "^{{ expected }}$"})
    with pytest.raises(ScoreFailure, match="does not compile"):
        evaluate(score, "x", {**CASE, "expected": "a(b"})


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("scores", "message", "line"),
    [
        pytest.param("  s: {contain: x}", "unknown key 'contain'", 9, id="unknown-kind"),
        pytest.param("  s: {strip: false}", "no kind of score given", 9, id="no-kind"),
        pytest.param("  s: {equals: a, regex: b}", "several kinds given", 9, id="two-kinds"),
        pytest.param('  s: {regex: "a(b"}', "bad regex: missing )", 9, id="bad-regex"),
        pytest.param(
            "  s:\n    json_schema: {type: 12}", "bad JSON schema", 10, id="bad-json-schema"
        ),
        pytest.param(
            '  s: {equals: "{{ expectd }}"}',
            "undefined template variable 'expectd'",
            9,
            id="undefined-variable",
        ),
        pytest.param(
            '  s: {json_path: {path: "a.b", equals: 1}}', "cannot read JSON path", 9, id="path"
        ),
        pytest.param(
            '  s: {close_to: {value: "{{ country }}"}}', "close_to needs a number", 9, id="close"
        ),
        pytest.param('  s: {python: "no_such_module:f"}', "cannot import", 9, id="import"),
        pytest.param('  s: {python: "not a function"}', "is not module:function", 9, id="func"),
        pytest.param(
            "  s:\n    judge:\n      rubric: 'Grade {{ answr }}'\n      model: m",
            "undefined template variable 'answr'",
            11,
            id="rubric-variable",
        ),
        pytest.param(
            "  s:\n    judge: {rubric: x, model: m, provider: opena}",
            "unknown provider 'opena'",
            10,
            id="judge-provider",
        ),
        pytest.param(
            "  s:\n    judge: {rubric: x, model: m, params: {temprature: 0}}",
            "unknown judge parameter 'temprature'",
            10,
            id="judge-param",
        ),
        pytest.param("  s:\n    judge: {rubric: x, model: m, scale: 1}", "", 10, id="scale"),
        pytest.param("  bad-name: {equals: x}", "cannot name a score", 9, id="name"),
        pytest.param("  country: {equals: x}", "", 0, id="ok-name-not-a-clash"),
    ],
)
def test_validation_names_file_and_line(
    write_yaml: Callable[..., Path], scores: str, message: str, line: int
) -> None:
    text = textwrap.dedent("""\
        name: v
        provider: echo
        prompts:
          p: "Capital of {{ country }}?"
        cases:
          - {country: France, expected: Paris}
        params: {model: m}
        scores:
        """)
    path = write_yaml(text + scores + "\n")
    if not line:
        promptgrid.Experiment.from_yaml(path)
        return
    with pytest.raises(promptgrid.SpecError) as caught:
        promptgrid.Experiment.from_yaml(path)
    assert f"{path}:{line} scores." in str(caught.value)
    assert message in str(caught.value)


def test_unknown_kind_suggests_the_right_one(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml(
        "prompts: {p: hi}\nparams: {model: m}\nprovider: echo\nscores:\n  s: {icontain: x}\n"
    )
    with pytest.raises(promptgrid.SpecError, match="did you mean 'icontains'"):
        promptgrid.Experiment.from_yaml(path)


def test_cli_validate_exits_2_with_one_line_and_no_traceback(
    write_yaml: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yaml('prompts: {p: hi}\nparams: {model: m}\nscores:\n  s: {regex: "("}\n')
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:4 scores.s.regex: bad regex") and "Traceback" not in err


# --------------------------------------------------------------------------- python: scorers

SCORERS = """\
def exact(answer, row):
    return answer == "echo: " + row["vars"]["word"]

def length(answer, row):
    return len(answer)

def several(answer, row):
    if row["vars"]["word"] == "boom":
        raise ValueError("no boom here")
    if row["vars"]["word"] == "skip":
        return None
    return {"chars": len(answer), "upper": answer.isupper(), "repeat": row["repeat"]}

def wrong(answer, row):
    return "yes"
"""


def _python_experiment(tmp_path: Path) -> Path:
    (tmp_path / "my_scorers.py").write_text(SCORERS)
    path = tmp_path / "exp.yaml"
    path.write_text(
        textwrap.dedent("""\
        name: py
        provider: echo
        prompts: {p: "{{ word }}"}
        vars: {word: [hi, boom, skip]}
        params: {model: m}
        scores:
          exact: {python: "my_scorers:exact"}
          length: {python: "my_scorers:length"}
          several: {python: "my_scorers:several"}
          wrong: {python: "my_scorers:wrong"}
        """)
    )
    return path


@pytest.mark.slow
def test_python_scorers_bool_number_mapping_none_and_exceptions(tmp_path: Path) -> None:
    df = promptgrid.run(_python_experiment(tmp_path), results_dir=tmp_path / "r", progress=False)
    assert list(df["score_exact"]) == [True, True, True]
    assert str(df["score_exact"].dtype) == "boolean"
    assert list(df["score_length"]) == [8.0, 10.0, 10.0]
    assert df["score_several.chars"].tolist()[0] == 8.0
    assert df["score_several.upper"].tolist()[0] is False
    assert df["score_several.chars"].isna().tolist() == [False, True, True]
    errors = [json.loads(e) if isinstance(e, str) else {} for e in df["score_errors"]]
    assert errors[1]["several"] == "ValueError: no boom here"  # the run went on
    assert "several" not in errors[2]  # None: no score, and no error
    assert all(e["wrong"].startswith("returned str 'yes'") for e in errors)
    assert df["score_wrong"].isna().all()


# --------------------------------------------------------------------------- in the table

SCORED = """\
name: scored
provider: echo
prompts:
  direct: "What is the capital of {{ country }}?"
  open_book: "{{ country }}: capital {{ expected }}. What is the capital of {{ country }}?"
cases:
  - {country: France, expected: Paris}
  - {country: Peru, expected: Lima}
params: {model: m}
scores:
  correct: {icontains: "{{ expected }}"}
  short: {max_length: 60}
"""


@pytest.mark.slow
def test_score_columns_come_after_the_fixed_ones_and_reach_every_file(
    write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    df = promptgrid.run(
        write_yaml(SCORED), results_dir=tmp_path / "r", progress=False, formats="csv,jsonl,xlsx"
    )
    assert list(df.columns[-3:]) == ["score_correct", "score_short", "score_errors"]
    assert list(df.columns).index("cached") == len(df.columns) - 4
    assert df["score_correct"].tolist() == [False, False, True, True]
    folder = tmp_path / "r" / "scored" / df["run_id"][0]
    assert pd.read_csv(folder / "results.csv")["score_correct"].tolist() == [0, 0, 1, 1] or (
        pd.read_csv(folder / "results.csv")["score_correct"].tolist() == [False, False, True, True]
    )
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert [r["score_correct"] for r in rows] == [False, False, True, True]
    sheet = pd.read_excel(folder / "results.xlsx", sheet_name="results")
    assert "score_short" in sheet.columns
    assert promptgrid.load(df["run_id"][0], results_dir=tmp_path / "r").equals(df)


@pytest.mark.slow
def test_error_rows_have_no_score_not_a_failing_one(tmp_path: Path) -> None:
    exp = promptgrid.Experiment(
        prompts={"p": "Say {{ word }}"},
        vars={"word": ["yes", "no"]},
        params={"model": "m"},
        provider="openai",
        scores={"said": {"contains": "{{ word }}"}},
    )
    with FaultServer() as server:
        server.script_for("Say no", ["400"])
        df = promptgrid.run(exp, base_url=server.base_url, results_dir=tmp_path, progress=False)
    assert df["status"].tolist() == ["ok", "error"]
    assert df["score_said"].tolist()[0] is True
    assert pd.isna(df["score_said"][1]) and pd.isna(df["score_errors"][1])
    summary = promptgrid.summary(df, by=[])
    assert summary["score_said"].iloc[0] == 1.0  # the error row is not a failure


@pytest.mark.slow
def test_rescoring_calls_no_model_and_replaces_the_scores(tmp_path: Path) -> None:
    exp = promptgrid.Experiment(
        prompts={"p": "Capital of {{ country }}? It is {{ expected }}."},
        cases=[{"country": "France", "expected": "Paris"}, {"country": "Peru", "expected": "X"}],
        params={"model": "m"},
        provider="openai",
        scores={"correct": {"contains": "Paris"}},
    )
    with FaultServer() as server:
        df = promptgrid.run(exp, base_url=server.base_url, results_dir=tmp_path, progress=False)
        sent = server.stats()["requests"]
        again = promptgrid.score(df, results_dir=tmp_path, progress=False)
        other = promptgrid.score(
            df["run_id"][0],
            {"mentions_x": {"contains": "X"}, "long": {"min_length": 10}},
            results_dir=tmp_path,
            progress=False,
        )
        assert server.stats()["requests"] == sent  # scoring never calls the graded model
    assert again["score_correct"].tolist() == df["score_correct"].tolist() == [True, False]
    assert "score_correct" not in other.columns
    assert other["score_mentions_x"].tolist() == [False, True]
    reloaded = promptgrid.load(df["run_id"][0], results_dir=tmp_path)
    assert reloaded["score_mentions_x"].tolist() == [False, True]  # the run's scores now
    files = tmp_path / exp.name / df["run_id"][0]
    assert "score_mentions_x" in pd.read_parquet(files / "results.parquet").columns


@pytest.mark.slow
def test_a_resume_scores_what_is_missing_and_an_edited_score_again(
    write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_yaml(SCORED)
    df = promptgrid.run(path, results_dir=tmp_path, progress=False)
    run_id = df["run_id"][0]
    db = sqlite3.connect(tmp_path / "promptgrid.sqlite")
    db.execute("DELETE FROM scores WHERE idx = 3")
    db.execute("UPDATE runs SET status = 'interrupted'")
    db.commit()
    assert pd.isna(promptgrid.load(run_id, results_dir=tmp_path)["score_correct"][3])
    resumed = promptgrid.run(path, results_dir=tmp_path, progress=False, resume=True)
    assert resumed["score_correct"].tolist() == [False, False, True, True]
    edited = write_yaml(SCORED.replace("max_length: 60", "max_length: 20"))
    db.execute("UPDATE runs SET status = 'interrupted'")
    db.commit()
    db.close()
    resumed = promptgrid.run(edited, results_dir=tmp_path, progress=False, resume=True)
    assert resumed["run_id"][0] == run_id
    assert resumed["score_short"].tolist() == [False, False, False, False]


def test_scores_file_errors_name_that_file(tmp_path: Path) -> None:
    df = promptgrid.run(
        {"name": "s", "provider": "echo", "prompts": {"p": "hi"}, "params": {"model": "m"}},
        results_dir=tmp_path,
        progress=False,
    )
    scores = tmp_path / "scores.yaml"
    scores.write_text('ok: {contains: hi}\nbad: {regex: "[a-"}\n')
    with pytest.raises(promptgrid.SpecError, match=rf"{scores}:2 scores\.bad\.regex"):
        promptgrid.score(df, scores, results_dir=tmp_path)


def test_scoring_a_run_without_scores_says_what_to_give(tmp_path: Path) -> None:
    df = promptgrid.run(
        {"name": "s", "provider": "echo", "prompts": {"p": "hi"}, "params": {"model": "m"}},
        results_dir=tmp_path,
        progress=False,
    )
    with pytest.raises(promptgrid.UsageError, match="has no scores: give some"):
        promptgrid.score(df, results_dir=tmp_path)
