"""Scores against hostile answers and hostile scorers: deep JSON, catastrophic regexes, python
scorers that hang, exit, or return what no score is. Each becomes that row's score error and
the run goes on; a signal stops scoring at once; nothing a scorer does can keep the process up.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

import promptgrid
from processes import start, wait_for, wait_for_line
from promptgrid.cli import main
from promptgrid.scoring.checks import ScoreFailure
from promptgrid.scoring.judge import parse_verdict
from promptgrid.testing import FaultServer

#: Deeper than json.loads reads on any supported Python (3.13 reads 1,200; 3.10-3.12 do not).
NESTED = "[" * 100_000 + "]" * 100_000


def _errors(df: pd.DataFrame) -> list[dict[str, str]]:
    return [json.loads(e) if isinstance(e, str) else {} for e in df["score_errors"]]


# --------------------------------------------------------------------------- hostile answers


@pytest.mark.slow  # the scoring worker is a process
def test_json_nested_too_deep_is_a_score_error_and_score_can_rescore_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = {
        "name": "nested",
        "provider": "openai",
        "prompts": {"p": "say {{ word }}"},
        "vars": {"word": ["nest", "plain"]},
        "params": {"model": "m"},
        "scores": {
            "js": {"is_json": True},
            "schema": {"json_schema": {"type": "array"}},
            "path": {"json_path": {"path": "$[0]", "equals": 1}},
            "short": {"max_length": 10},
        },
    }
    with FaultServer(answers={"nest": NESTED, "plain": "[1]"}) as server:
        df = promptgrid.run(exp, base_url=server.base_url, results_dir=tmp_path, progress=False)
    errors = _errors(df)
    assert set(errors[0]) == {"js", "schema", "path"}
    assert all("nested too deeply" in why for why in errors[0].values())
    assert df["score_short"].tolist() == [False, True]  # the row's other scores are there
    assert df["score_js"].isna()[0] and df["score_js"][1]
    with pytest.raises(SystemExit) as exited:
        main(["score", df["run_id"][0], "--results-dir", str(tmp_path)])
    assert exited.value.code == 0
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "why"),
    [
        pytest.param('{"verdict": ' + NESTED + "}", "nested too deeply", id="nested"),
        pytest.param('{"score": 1' + "0" * 400 + "}", "outside 1..5", id="huge-int"),
        pytest.param('{"score": 1e400}', "no integer", id="inf"),
        pytest.param(
            '{"verdict": "pass", "reason": "' + "x" * 10 + '\\ud800"}', "", id="surrogate"
        ),
    ],
)
def test_hostile_verdicts_are_unparseable_not_crashes(text: str, why: str) -> None:
    scale = None if "verdict" in text else 5
    if not why:
        value, reason = parse_verdict(text, scale)
        assert value == 1.0 and reason is not None
        reason.encode("utf-8")  # storable: the lone surrogate was replaced
        return
    with pytest.raises(ScoreFailure, match=why):
        parse_verdict(text, scale)


@pytest.mark.slow  # the scoring worker is a process
def test_a_judge_verdict_nested_too_deep_is_that_rows_score_error(tmp_path: Path) -> None:
    exp = {
        "name": "judged",
        "provider": "openai",
        "prompts": {"p": "{{ c }}"},
        "vars": {"c": ["France", "Peru"]},
        "params": {"model": "m"},
        "scores": {
            "good": {
                "judge": {
                    "rubric": "Grade {{ answer }}",
                    "model": "judge-m",  # a text answer: the verdict reaches the judge's parser
                    "params": {"response_format": {"type": "text"}},
                }
            }
        },
    }
    verdicts = {"Grade echo: France": '{"verdict": ' + NESTED + "}",
                "Grade echo: Peru": '{"reason": "ok", "verdict": "pass"}'}  # fmt: skip
    with FaultServer(answers=verdicts) as server:
        df = promptgrid.run(exp, base_url=server.base_url, results_dir=tmp_path, progress=False)
    assert "nested too deeply" in _errors(df)[0]["good"]
    assert df["score_good"].tolist()[1] is True


# --------------------------------------------------------------------------- regex engines


@pytest.mark.parametrize(
    ("pattern", "text", "engine"),
    [
        pytest.param(r"(a+)+$", "a" * 70 + "!", "re2", id="catastrophic-for-re"),
        pytest.param(r"^\d{4}-\d{2}$", "2024-05", "re2", id="ascii-classes-ascii-text"),
        pytest.param(r"^\w+$", "Élise", "re", id="unicode-class-unicode-text"),
        pytest.param(r"^\s$", "\v", "re", id="vertical-tab"),
        pytest.param(r"caf", "café", "re2", id="no-class-unicode-text"),
        pytest.param(r"a$", "a\n", "re", id="dollar-final-newline"),
        pytest.param(r"(a)\1", "aa", "re", id="backreference"),
        pytest.param(r"(?<=a)b", "ab", "re", id="lookbehind"),
        pytest.param(r"a\Z", "a", "re", id="python-end"),
        pytest.param(r"a{,2}b", "ab", "re", id="open-repeat"),
        pytest.param(r"x[:alpha:]", "x:", "re", id="posix-class"),
    ],
)
def test_regex_engine_by_pattern_and_text(pattern: str, text: str, engine: str) -> None:
    from promptgrid.scoring.patterns import Matcher

    matcher = Matcher(re.compile(pattern))
    assert matcher.engine(text) == engine
    if len(text) < 10:  # (re would take forever on the first)
        assert matcher.matches(text) == (re.search(pattern, text) is not None)
    else:
        assert not matcher.matches(text)


@pytest.mark.parametrize(
    "pattern",
    [r"^\d+$", r"\bcat\b", r"^[a-z]+\s\w+$", r"(?m)^b$", r"(?s)a.b", r"colou?r", r"x*?y",
     r"[^\W\d]+", r"^ÉLISE$", r"^\S+$", r"(?i:A)b", r"a\sb"],
)  # fmt: skip
def test_both_engines_agree_with_python_re(pattern: str) -> None:
    from promptgrid.scoring.patterns import Matcher

    texts = ["123", "a cat sat", "ab cd", "a\nb", "a\nb\n", "colour", "Élise", "élise", "", "a\vb"]
    for flags in (0, re.IGNORECASE):
        compiled = re.compile(pattern, flags)
        for text in texts:
            found = Matcher(compiled).matches(text)
            assert found == (compiled.search(text) is not None), (pattern, flags, text)


# --------------------------------------------------------------------------- python scorers

HOSTILE = """\
import math, os, sys, time

def huge(answer, row):
    return 10**400

def inf(answer, row):
    return math.inf

def nan(answer, row):
    return float("nan")

def exits(answer, row):
    sys.exit(3)

def dies(answer, row):
    if row["vars"]["w"] == "a":
        os._exit(1)
    return True

def spins(answer, row):
    if row["vars"]["w"] == "a":
        while True:
            pass
    return 1

def sleeps(answer, row):
    if row["vars"]["w"] == "b":
        time.sleep(1000)
    return 2

def many(answer, row):
    return {f"k{i}": i for i in range(1000)}

def fine(answer, row):
    return len(answer)
"""


def _hostile_experiment(tmp_path: Path, timeout: str = "timeout_s: 0.5") -> Path:
    (tmp_path / "hostile.py").write_text(HOSTILE)
    path = tmp_path / "exp.yaml"
    names = ["huge", "inf", "nan", "exits", "dies", "spins", "sleeps", "many", "fine"]
    lines = "\n".join(f"  {n}: {{python: 'hostile:{n}', {timeout}}}" for n in names)
    path.write_text(
        "name: hostile\nprovider: echo\nprompts: {p: '{{ w }}'}\nvars: {w: [a, b, c]}\n"
        f"params: {{model: m}}\nscores:\n{lines}\n"
    )
    return path


@pytest.mark.slow
def test_python_scorer_failures_are_row_errors_and_the_run_goes_on(tmp_path: Path) -> None:
    path = _hostile_experiment(tmp_path)
    proc = start("run", str(path), "--results-dir", str(tmp_path / "r"), cwd=tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    df = promptgrid.load(results_dir=tmp_path / "r")
    errors = _errors(df)
    assert df["score_fine"].tolist() == [7.0, 7.0, 7.0]  # len("echo: a")
    for name, why in [("huge", "too large"), ("inf", "inf"), ("nan", "nan"),
                      ("exits", "sys.exit(3)"), ("many", "at most")]:  # fmt: skip
        assert all(why in e[name] for e in errors), (name, errors)
    assert "ended" in errors[0]["dies"] and df["score_dies"].tolist()[1:] == [True, True]
    assert "0.5 s" in errors[0]["spins"] and df["score_spins"].tolist()[1:] == [1.0, 1.0]
    assert "0.5 s" in errors[1]["sleeps"] and df["score_sleeps"].tolist()[::2] == [2.0, 2.0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("0", "greater than 0", id="zero"),
        pytest.param("-1", "greater than 0", id="negative"),
        pytest.param(".inf", "less than or equal", id="infinite"),
        pytest.param(".nan", "got nan", id="nan"),
        pytest.param("soon", "valid number", id="text"),
    ],
)
def test_timeout_s_is_validated_at_its_line(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "prompts: {p: hi}\nparams: {model: m}\nprovider: echo\nscores:\n"
        f"  s:\n    contains: hi\n    timeout_s: {value}\n"
    )
    with pytest.raises(promptgrid.SpecError) as caught:
        promptgrid.Experiment.from_yaml(path)
    assert f"{path}:7 scores.s.timeout_s" in str(caught.value)
    assert message in str(caught.value)


def test_timeout_s_is_accepted_and_a_judge_says_it_has_none(tmp_path: Path) -> None:
    exp = promptgrid.Experiment(
        prompts={"p": "hi"}, params={"model": "m"}, provider="echo",
        scores={"s": {"contains": "hi", "timeout_s": 0.25}},
    )  # fmt: skip
    assert exp.scores[0].timeout_s == 0.25
    assert promptgrid.Experiment(
        prompts={"p": "hi"}, params={"model": "m"}, provider="echo", scores={"s": {"is_json": True}}
    ).scores[0].timeout_s == 5.0  # fmt: skip
    with pytest.raises(promptgrid.SpecError, match="timeout_s"):
        promptgrid.Experiment(
            prompts={"p": "hi"}, params={"model": "m"}, provider="echo",
            scores={"j": {"judge": {"rubric": "x", "model": "m"}, "timeout_s": 2}},
        )  # fmt: skip


# --------------------------------------------------------------------------- processes

SPIN = """\
import os
from pathlib import Path

def spin(answer, row):
    Path("scoring-started").write_text(str(os.getpid()))
    while True:
        pass
"""


def _gone(pid: int) -> bool:
    """The process ended (a zombie waiting for its reaper counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _spinning(tmp_path: Path, regex: bool = False) -> Path:
    (tmp_path / "spinner.py").write_text(SPIN)
    path = tmp_path / "exp.yaml"
    score = "{regex: '(a+)+$'}" if regex else "{python: 'spinner:spin', timeout_s: 3600}"
    word = "a" * 70 + "!" if regex else "x"
    path.write_text(
        f"name: spin\nprovider: echo\nprompts: {{p: '{{{{ w }}}}'}}\nvars: {{w: ['{word}']}}\n"
        f"params: {{model: m}}\nscores:\n  s: {score}\n"
    )
    return path


@pytest.mark.slow
def test_a_catastrophic_regex_scores_at_once(tmp_path: Path) -> None:
    proc = start("run", str(_spinning(tmp_path, regex=True)), "--results-dir", "r", cwd=tmp_path)
    _, err = proc.communicate(timeout=120)  # 678 s before re2
    assert proc.returncode == 0, err
    assert promptgrid.load(results_dir=tmp_path / "r")["score_s"].tolist() == [False]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signals", "code"),
    [
        pytest.param([signal.SIGTERM], 143, id="sigterm-once"),
        pytest.param([signal.SIGINT, signal.SIGINT], 130, id="sigint-twice"),
    ],
)
def test_a_signal_stops_a_scorer_stuck_in_a_loop(
    tmp_path: Path, signals: list[int], code: int
) -> None:
    proc = start("run", str(_spinning(tmp_path)), "--results-dir", "r", cwd=tmp_path)
    wait_for(lambda: (tmp_path / "scoring-started").exists(), timeout=60)
    for i, signum in enumerate(signals):
        proc.send_signal(signum)
        if i == 0 and len(signals) > 1:
            wait_for_line(proc, "stopping")
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    wait_for(lambda: _gone(int((tmp_path / "scoring-started").read_text())), timeout=10)
    # The row is answered and unscored: `promptgrid score` scores it later with other code.
    (tmp_path / "spinner.py").write_text("def spin(answer, row):\n    return 1\n")
    run_id = promptgrid.load(results_dir=tmp_path / "r")["run_id"][0]
    again = start("score", run_id, "--results-dir", "r", cwd=tmp_path)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert promptgrid.load(run_id, results_dir=tmp_path / "r")["score_s"].tolist() == [1.0]


@pytest.mark.slow
def test_the_worker_ends_when_the_main_process_is_killed(tmp_path: Path) -> None:
    proc = start("run", str(_spinning(tmp_path)), "--results-dir", "r", cwd=tmp_path)
    started = tmp_path / "scoring-started"
    wait_for(lambda: started.exists() and started.read_text(), timeout=60)
    proc.kill()  # SIGKILL: no cleanup runs in the main process
    proc.communicate(timeout=10)
    wait_for(lambda: _gone(int(started.read_text())), timeout=30)


def test_a_scorer_in_main_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "prompts: {p: hi}\nparams: {model: m}\nprovider: echo\nscores:\n"
        "  s: {python: '__main__:f'}\n"
    )
    with pytest.raises(promptgrid.SpecError, match=rf"{path}:5 scores\.s\.python: .*worker"):
        promptgrid.Experiment.from_yaml(path)


# --------------------------------------------------------------------------- the worker itself

SLOW_SECOND = """\
import time
from pathlib import Path

def slow_second(answer, row):
    if answer == "b":
        Path(row["vars"]["flag"]).write_text("started")
        time.sleep(1000)
    return len(answer)
"""


def _worker_scores(tmp_path: Path) -> tuple[Any, ...]:
    (tmp_path / "slow_scorers.py").write_text(SLOW_SECOND)
    exp = promptgrid.Experiment(
        prompts={"p": "x"}, params={"model": "m"}, provider="echo", base_dir=tmp_path,
        scores={"n": {"python": "slow_scorers:slow_second", "timeout_s": 600},
                "eq": {"equals": "a"}},
    )  # fmt: skip
    return exp.scores


@pytest.mark.slow
async def test_a_stop_keeps_the_answers_so_far_and_kills_the_scorer(tmp_path: Path) -> None:
    from promptgrid.scoring.worker import ScoringWorker

    worker = ScoringWorker(_worker_scores(tmp_path), tmp_path)
    flag = tmp_path / "flag"
    rows = [(text, {}, {"vars": {"flag": str(flag)}}) for text in ("a", "b", "c")]
    jobs = [(0, "n"), (0, "eq"), (1, "n"), (2, "n")]
    task = asyncio.ensure_future(worker.score(rows, jobs))
    try:
        while not flag.exists():  # bounded by the task: it would end (in error) first
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        worker.stop()
        results = await asyncio.wait_for(task, 30)
    finally:
        await worker.aclose()
    assert results == [([("n", "float", 1.0)], None), ([("eq", "bool", 1.0)], None)]


@pytest.mark.slow
async def test_a_scorer_gone_since_validation_is_each_rows_error(tmp_path: Path) -> None:
    from promptgrid.scoring.worker import ScoringWorker

    scores = _worker_scores(tmp_path)
    (tmp_path / "slow_scorers.py").unlink()  # the worker imports it afresh: not there
    worker = ScoringWorker(scores, tmp_path)
    try:
        results = await worker.score(
            [("a", {}, {}), ("z", {}, {})], [(0, "n"), (0, "eq"), (1, "n")]
        )
    finally:
        await worker.aclose()
    assert [error is None for _, error in results] == [False, True, False]
    assert "cannot be loaded in the scoring process: cannot import 'slow_scorers'" in str(
        results[0][1]
    )
