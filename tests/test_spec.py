"""Validating experiment files: each failure names file, line and key path, and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptgrid.config import RunOptions, resolve
from promptgrid.errors import SpecError
from promptgrid.spec import Experiment, json_schema

BASE = """\
name: t
provider: echo
prompts:
  p: "Hello {{ who }}"
vars:
  who: [world, moon]
params:
  model: m
"""


def problems(write_yaml, text: str) -> list:
    path = write_yaml(text)
    with pytest.raises(SpecError) as info:
        Experiment.from_yaml(path)
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "line", "path", "message", "hint"),
    [
        pytest.param(
            BASE + "repeats: 0\n",
            9,
            "repeats",
            "greater than or equal to 1",
            "schema",
            id="repeats-zero",
        ),
        pytest.param(
            BASE.replace("model: m", "model: m\n  temperature: [0.5, 3]"),
            9,
            "params.temperature[1]",
            "less than or equal to 2",
            None,
            id="temperature-range",
        ),
        pytest.param(
            BASE + "limits: {rpm: -5}\n",
            9,
            "limits.rpm",
            "greater than 0",
            None,
            id="negative-limit",
        ),
        pytest.param(
            BASE + "limits:\n  rmp: 5\n",
            10,
            "limits.rmp",
            "unknown key 'rmp'",
            "did you mean 'rpm'?",
            id="unknown-nested-key",
        ),
        pytest.param(
            BASE + "promts: {}\n",
            9,
            "promts",
            "unknown key 'promts'",
            "did you mean 'prompts'?",
            id="unknown-top-key",
        ),
        pytest.param(
            BASE.replace("model: m", "model: m\n  temprature: 0.5"),
            9,
            "params.temprature",
            "unknown parameter 'temprature'",
            "did you mean 'temperature'?",
            id="unknown-param",
        ),
        pytest.param(
            BASE.replace("Hello {{ who }}", "Hello {{ whoo }}"),
            4,
            "prompts.p",
            "undefined template variable 'whoo'",
            "did you mean 'who'?",
            id="undefined-variable",
        ),
        pytest.param(
            BASE.replace("Hello {{ who }}", "Hello {{ who }"),
            4,
            "prompts.p",
            "template syntax error",
            "Jinja2",
            id="template-syntax",
        ),
        pytest.param(
            BASE.replace("who: [world, moon]", "who: []"),
            6,
            "vars.who",
            "empty axis",
            "at least one value",
            id="empty-var-axis",
        ),
        pytest.param(
            BASE.replace("model: m", "model: []"),
            8,
            "params.model",
            "empty axis",
            None,
            id="empty-param-axis",
        ),
        pytest.param(
            BASE.replace("model: m", "model: m\n  seed: 3").replace("moon]", "moon]\n  seed: [1]"),
            7,
            "vars.seed",
            "both a var and a parameter",
            "rename",
            id="var-param-clash",
        ),
        pytest.param(
            BASE + "cases_file: missing.csv\n",
            9,
            "cases_file",
            "no such file",
            "relative",
            id="missing-cases-file",
        ),
        pytest.param(
            BASE.replace("provider: echo", "provider: ecko"),
            2,
            "provider",
            "unknown provider 'ecko'",
            "did you mean 'echo'?",
            id="unknown-provider",
        ),
        pytest.param(
            BASE.replace("prompts:\n  p:", "prompts:\n  p:\n    - {role: usr, content: hi}\n  q:"),
            5,
            "prompts.p[0].role",
            "input should be",
            None,
            id="bad-role",
        ),
        pytest.param(
            BASE.replace("moon]", "moon]\n  response: [x]"),
            7,
            "vars.response",
            "result column",
            "rename",
            id="reserved-name",
        ),
        pytest.param(
            BASE.replace("  model: m\n", ""),
            7,
            "params",
            "params.model is required",
            None,
            id="missing-model",
        ),
    ],
)
def test_invalid_files_are_located(write_yaml, text, line, path, message, hint) -> None:
    found = problems(write_yaml, text)
    assert len(found) >= 1
    p = found[0]
    assert p.file and p.file.endswith("exp.yaml")
    assert p.line == line, str(p)
    assert p.path == path, str(p)
    assert message in p.message.lower() if message.islower() else message in p.message
    if hint:
        assert p.hint and hint in p.hint


def test_yaml_syntax_error_has_line(write_yaml) -> None:
    [p] = problems(write_yaml, BASE + "limits: {rpm: 5\n")
    assert "invalid YAML" in p.message
    assert p.line is not None and p.line >= 9


def test_duplicate_keys_are_errors(write_yaml) -> None:
    [p] = problems(write_yaml, BASE + "params:\n  model: other\n")
    assert "duplicate key 'params'" in p.message
    assert p.line == 9 and "line 7" in p.message


def test_all_problems_reported_at_once(write_yaml) -> None:
    found = problems(write_yaml, BASE + "repeats: 0\nlimits: {rpm: 0, tpm: -1}\n")
    assert {p.path for p in found} == {"repeats", "limits.rpm", "limits.tpm"}


def test_message_format(write_yaml) -> None:
    path = write_yaml(BASE + "limits:\n  rmp: 5\n")
    with pytest.raises(SpecError) as info:
        Experiment.from_yaml(path)
    assert str(info.value) == (f"{path}:10 limits.rmp: unknown key 'rmp'\n  -> did you mean 'rpm'?")


def test_missing_experiment_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        Experiment.from_yaml(tmp_path / "nope.yaml")


def test_not_a_mapping(write_yaml) -> None:
    [p] = problems(write_yaml, "- just\n- a list\n")
    assert "mapping" in p.message and p.line == 1


def test_cases_inline_and_file(write_yaml, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("who,expected\nsun,hot\nice,cold\n")
    (tmp_path / "rows.jsonl").write_text('{"who": "a", "n": 1}\n\n{"who": "b", "n": 2}\n')
    text = BASE.replace("vars:\n  who: [world, moon]\n", "")
    exp = Experiment.from_yaml(write_yaml(text + "cases_file: rows.csv\n"))
    assert exp.cases.columns == ("who", "expected") and exp.total == 2
    assert list(exp.iter_cases())[1] == {"who": "ice", "expected": "cold"}
    exp = Experiment.from_yaml(write_yaml(text + "cases_file: rows.jsonl\n"))
    assert exp.total == 2 and ("n", "int") in exp.columns()
    exp = Experiment.from_yaml(write_yaml(text + "cases: [{who: x}, {who: y}, {who: z}]\n"))
    assert exp.total == 3


def test_cases_file_errors(write_yaml, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"who": "a"}\n{"who": \n')
    text = BASE.replace("vars:\n  who: [world, moon]\n", "")
    [p] = problems(write_yaml, text + "cases_file: bad.jsonl\n")
    assert "bad.jsonl:2" in p.message and p.path == "cases_file" and p.line == 7
    (tmp_path / "ragged.jsonl").write_text('{"who": "a"}\n{"who": "b", "x": 1}\n')
    [p] = problems(write_yaml, text + "cases_file: ragged.jsonl\n")
    assert "ragged.jsonl:2" in p.message
    [p] = problems(write_yaml, text + "cases_file: rows.txt\n")
    assert ".csv or .jsonl" in p.message


def test_case_column_needed_by_template(write_yaml, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("country\nFrance\n")
    text = BASE.replace("vars:\n  who: [world, moon]\n", "")
    [p] = problems(write_yaml, text + "cases_file: rows.csv\n")
    assert "undefined template variable 'who'" in p.message


def test_list_valued_params(write_yaml) -> None:
    exp = Experiment.from_yaml(write_yaml(BASE.replace("model: m", 'model: m\n  stop: ["a", "b"]')))
    assert exp.param_axes["stop"] == (["a", "b"],)
    exp = Experiment.from_yaml(
        write_yaml(BASE.replace("model: m", 'model: m\n  stop: [["a"], ["b", "c"]]'))
    )
    assert exp.param_axes["stop"] == (["a"], ["b", "c"]) and exp.total == 4


def test_programmatic_experiment_same_validation() -> None:
    exp = Experiment(
        prompts={"p": "Name a {{ animal }}"},
        vars={"animal": ["cat", "dog"]},
        params={"model": "m", "temperature": [0, 1]},
        provider="echo",
    )
    assert exp.total == 4 and exp.axes == {"prompt": 1, "animal": 2, "temperature": 2, "repeat": 1}
    with pytest.raises(SpecError) as info:
        Experiment(prompts={"p": "{{ animl }}"}, vars={"animal": ["x"]}, params={"model": "m"})
    [p] = info.value.problems
    assert p.path == "prompts.p[0].content" and p.file is None and "'animal'" in (p.hint or "")


def test_to_yaml_round_trip(tmp_path: Path, animals: Path) -> None:
    exp = Experiment.from_yaml(animals)
    copy = tmp_path / "copy.yaml"
    copy.write_text(exp.to_yaml())
    again = Experiment.from_yaml(copy)
    assert again.to_dict() == exp.to_dict() and again.total == exp.total == 12


def test_models_route_to_providers(write_yaml) -> None:
    exp = Experiment.from_yaml(
        write_yaml(
            BASE.replace("model: m", "model: [m, llama]")
            + "providers:\n  local: {base_url: 'http://127.0.0.1:9/v1', models: [llama]}\n"
        )
    )
    config = resolve(exp, RunOptions())
    assert config.routes == {"m": "echo", "llama": "local"}
    [p] = problems(
        write_yaml,
        BASE + "providers:\n  a: {models: [x]}\n  b: {models: [x]}\n",
    )
    assert "already listed" in p.message and p.line == 11


def test_schema_is_json_and_covers_params() -> None:
    schema = json.loads(json.dumps(json_schema()))
    props = schema["properties"]
    assert {"prompts", "vars", "params", "limits", "retry", "providers", "cases_file"} <= set(props)
    temperature = props["params"]["properties"]["temperature"]
    assert {"type": "number", "minimum": 0, "maximum": 2} in [
        {k: v for k, v in o.items() if k in ("type", "minimum", "maximum")}
        for o in temperature["anyOf"]
    ]
    assert props["params"]["additionalProperties"] is False


def test_known_params_cover_the_sdk() -> None:
    """Every chat-completion parameter of the openai SDK is accepted (new ones fail here)."""
    from openai.types.chat import completion_create_params as c

    from promptgrid.spec.schema import ParamValues

    sdk = set(c.CompletionCreateParamsBase.__annotations__)
    ours = set(ParamValues.model_fields)
    skipped = {"messages", "stream", "stream_options", "functions", "function_call",
               "moderation", "prompt_cache_options", "prompt_cache_retention"}  # fmt: skip
    assert sdk - ours - skipped == set()


@pytest.mark.parametrize(
    ("text", "warnings"),
    [
        pytest.param(
            BASE.replace("moon]", "moon]\n  tone: [calm, angry, sad]"),
            ["exp.yaml:7 vars.tone: var 'tone' is not used by any prompt\n"
             "  -> it multiplies the calls by 3 without changing any request; "
             "remove it or use it in a prompt"],
            id="unused-var",
        ),
        pytest.param(
            BASE.replace("moon]", "moon]\n  tone: [calm]"), [], id="unused-single-value",
        ),
        pytest.param(
            BASE.replace("moon]", "moon]\n  tone: [calm, sad]")
            .replace("prompts:", "prompts:\n  q: '{{ tone }} {{ who }}'"),
            [], id="used-by-another-prompt",
        ),
        pytest.param(
            BASE.replace('"Hello {{ who }}"', '"{% if who %}yes{% endif %}"'), [],
            id="used-in-a-tag",
        ),
    ],
)  # fmt: skip
def test_unused_var_is_a_warning(write_yaml, text: str, warnings: list[str]) -> None:
    path = write_yaml(text)
    exp = Experiment.from_yaml(path)
    assert [str(w).replace(f"{path.parent}/", "") for w in exp.warnings] == warnings


def test_validation_renders_the_first_row(write_yaml, tmp_path: Path) -> None:
    """One cell per prompt: the first case row and the first value of each var."""
    (tmp_path / "rows.csv").write_text("n\n0\n1\n")
    text = BASE.replace('"Hello {{ who }}"', '"{{ 10 // (n | int) }} {{ who }}"')
    [p] = problems(write_yaml, text + "cases_file: rows.csv\n")
    assert p.line == 4 and p.path == "prompts.p" and "n='0'" in p.message
    assert "ZeroDivisionError" in p.message and "first case row" in (p.hint or "")
    (tmp_path / "rows.csv").write_text("n\n1\n0\n")  # the second row fails only at run time
    assert Experiment.from_yaml(write_yaml(text + "cases_file: rows.csv\n")).total == 4


def test_too_many_problems_are_summed_up(write_yaml) -> None:
    values = ", ".join(["5"] * 100)
    found = problems(write_yaml, BASE.replace("model: m", f"model: m\n  temperature: [{values}]"))
    assert len(found) == 20 and found[-1].message == "... and 81 more problems like these"


# ----------------------------------------------------------------- race:

RACE = """\
name: t
provider: echo
prompts:
  a: "Hello {{ who }}"
  b: "Hi {{ who }}"
vars:
  who: [world, moon]
params:
  model: m
scores:
  said: {contains: world}
  rated: {judge: {rubric: "rate {{ answer }}", model: m, scale: 5}}
  mine: {python: "os.path:isfile"}
race:
  score: said
"""


@pytest.mark.parametrize(
    ("extra", "line", "path", "message", "hint"),
    [
        pytest.param(
            "", 15, "race.score", "unknown score 'sad'", "did you mean 'said'?", id="unknown-score"
        ),
        pytest.param(
            "  factor: model\n",
            16,
            "race.factor",
            "'model' does not vary",
            "race one of ['prompt', 'who']",
            id="factor-one-value",
        ),
        pytest.param(
            "  factor: whom\n",
            16,
            "race.factor",
            "unknown factor 'whom'",
            "race one of ['prompt', 'who']",
            id="unknown-factor",
        ),
        pytest.param(
            "  confidence: 1\n", 16, "race.confidence", "less than 1", None, id="confidence-one"
        ),
        pytest.param(
            "  confidence: 0\n", 16, "race.confidence", "greater than 0", None, id="confidence-zero"
        ),
        pytest.param(
            "  keep: 0\n", 16, "race.keep", "greater than or equal to 1", None, id="keep-zero"
        ),
        pytest.param(
            "  keep: 2\n",
            16,
            "race.keep",
            "nothing would be dropped",
            "keep fewer than 2",
            id="keep-all",
        ),
        pytest.param(
            "  min_cases: 0\n",
            16,
            "race.min_cases",
            "greater than or equal to 1",
            None,
            id="min-cases-zero",
        ),
        pytest.param(
            "  bounds: [0, 5]\n",
            16,
            "race.bounds",
            "has known bounds",
            "python scorer",
            id="bounds-on-bool",
        ),
        pytest.param(
            "  confidance: 0.9\n",
            16,
            "race.confidance",
            "unknown key",
            "did you mean 'confidence'?",
            id="unknown-key",
        ),
    ],
)
def test_race_settings_are_located(write_yaml, extra, line, path, message, hint) -> None:
    text = RACE + extra
    if path == "race.score":
        text = text.replace("score: said", "score: sad")
    found = problems(write_yaml, text)
    p = found[0]
    assert (p.line, p.path) == (line, path), str(p)
    assert message in p.message, str(p)
    if hint:
        assert p.hint and hint in p.hint, str(p)


def test_race_needs_a_score_and_python_scores_need_finite_bounds(write_yaml) -> None:
    [p] = problems(write_yaml, RACE.replace("  score: said\n", "  factor: prompt\n"))
    assert (p.path, p.message) == ("race.score", "missing required key")
    text = RACE.replace("score: said", "score: mine.sub") + "  bounds: [1, .inf]\n"
    [p] = problems(write_yaml, text)
    assert (p.line, p.path) == (16, "race.bounds") and "finite" in p.message
    cases = RACE.replace("vars:\n  who: [world, moon]\n", "cases: [{who: a}, {who: b}]\n")
    [p] = problems(write_yaml, cases + "  factor: who\n")
    assert (p.path, p.hint) == ("race.factor", "race one of ['prompt']")
    assert "case column" in p.message


def test_race_bounds_follow_the_score(write_yaml) -> None:
    def bounds(race: str) -> tuple[float, float]:
        return Experiment.from_yaml(write_yaml(RACE.replace("  score: said\n", race))).race_bounds

    assert bounds("  score: said\n") == (0.0, 1.0)
    assert bounds("  score: rated\n") == (1.0, 5.0)  # the judge's 1..5 scale
    assert bounds("  score: mine.sub\n  bounds: [-1, 10]\n") == (-1.0, 10.0)


def test_race_that_cannot_drop_anything_is_a_warning(write_yaml) -> None:
    experiment = Experiment.from_yaml(write_yaml(RACE))
    (warning,) = experiment.warnings
    assert warning.path == "race.min_cases" and "2 blocks per prompt" in warning.message
    quiet = Experiment.from_yaml(write_yaml(RACE + "  min_cases: 1\n"))
    assert quiet.warnings == ()


def test_a_bad_race_stops_run_with_exit_2_and_writes_nothing(write_yaml, tmp_path) -> None:
    from promptgrid.cli import main

    path = write_yaml(RACE + "  confidence: 1.5\n")
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--results-dir", str(tmp_path / "results")])
    assert info.value.code == 2 and not (tmp_path / "results").exists()
