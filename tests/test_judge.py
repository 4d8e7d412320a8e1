"""LLM-as-judge end to end: the real openai SDK against the fault server, whose scripted answer
texts (``answers``) play the judge's verdicts. Judge calls are cells of their own: retried,
cached, counted apart from the graded calls, and stopped by the run's budget."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import promptgrid
from promptgrid.scoring.checks import ScoreFailure
from promptgrid.scoring.judge import parse_verdict
from promptgrid.testing import FaultServer

PASS = '{"reason": "names the capital", "verdict": "pass"}'
FAIL = '```json\n{"reason": "wrong city", "verdict": "FAIL"}\n```'


def experiment(**judge: Any) -> dict[str, Any]:
    return {
        "name": "judged",
        "provider": "openai",
        "prompts": {"p": "What is the capital of {{ country }}?"},
        "cases": [{"country": c} for c in ("France", "Peru", "Kenya", "Japan")],
        "params": {"model": "graded-m", "max_tokens": 50},
        "pricing": {"graded-m": {"input": 1, "output": 1}, "judge-m": {"input": 10, "output": 10}},
        "scores": {
            "good": {
                "judge": {
                    "rubric": "Grade: {{ country }}\nQuestion: {{ prompt }}\nAnswer: {{ answer }}",
                    "model": "judge-m",
                    "params": {"max_tokens": 60, "temperature": 0},
                    **judge,
                }
            }
        },
    }


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(retry_after_s=0.01) as s:
        yield s


def run(server: FaultServer, tmp_path: Path, **options: Any) -> pd.DataFrame:
    exp = options.pop("exp", None) or experiment()
    return promptgrid.run(
        exp, base_url=server.base_url, results_dir=tmp_path, progress=False, **options
    )


@pytest.mark.slow
def test_pass_fail_verdicts_reasons_and_unparseable_ones_flagged(
    server: FaultServer, tmp_path: Path
) -> None:
    server.answer_for("Grade: France", PASS)
    server.answer_for("Grade: Peru", FAIL)
    server.answer_for("Grade: Kenya", "I would say it passes.")  # prose: never guessed
    server.answer_for("Grade: Japan", '{"verdict": "maybe"}')
    df = run(server, tmp_path)
    assert df["response"][0] == "echo: What is the capital of France?"  # graded: untouched
    assert df["score_good"].tolist()[:2] == [True, False]
    assert df["score_good"][2:].isna().all()
    assert df["score_good.reason"].tolist()[:2] == ["names the capital", "wrong city"]
    errors = [json.loads(e) for e in df["score_errors"][2:]]
    assert errors[0]["good"].startswith("unparseable verdict (not a JSON object)")
    assert "I would say it passes." in errors[0]["good"]
    assert errors[1]["good"].startswith('unparseable verdict (no "verdict" of pass or fail)')
    assert server.stats()["requests"] == 8  # 4 graded, 4 judged


@pytest.mark.slow
def test_a_scale_verdict_and_an_out_of_range_one(server: FaultServer, tmp_path: Path) -> None:
    server.answer_for("Grade: France", '{"reason": "fine", "score": 4}')
    server.answer_for("Grade: Peru", '{"reason": "x", "score": 7}')
    server.answer_for("Grade: Kenya", '{"reason": "x", "score": 2.5}')
    server.answer_for("Grade: Japan", '{"reason": "x", "score": 1.0}')
    df = run(server, tmp_path, exp=experiment(scale=5))
    assert str(df["score_good"].dtype) == "Int64"
    assert df["score_good"].tolist()[0] == 4 and df["score_good"].tolist()[3] == 1
    assert df["score_good"][1:3].isna().all()
    assert "score 7 is outside 1..5" in df["score_errors"][1]


@pytest.mark.slow
def test_the_judge_request_asks_for_a_structured_verdict(
    server: FaultServer, tmp_path: Path
) -> None:
    server.answer_for("Grade: ", PASS)
    run(server, tmp_path)
    db = sqlite3.connect(tmp_path / "promptgrid.sqlite")
    (request,) = [
        json.loads(r)
        for (r,) in db.execute(
            "SELECT q.request_json FROM judge_calls j JOIN requests q ON q.cell_id = j.cell_id "
            "WHERE j.idx = 0"
        )
    ]
    db.close()
    assert request["model"] == "judge-m"
    assert (
        request["messages"][0]["role"] == "system" and "JSON" in request["messages"][0]["content"]
    )
    assert request["messages"][1]["content"] == (
        "Grade: France\nQuestion: What is the capital of France?\n"
        "Answer: echo: What is the capital of France?"
    )
    fmt = request["params"]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["verdict"]["enum"] == ["pass", "fail"]
    assert request["params"]["temperature"] == 0


@pytest.mark.slow
def test_a_failing_judge_call_is_retried(server: FaultServer, tmp_path: Path) -> None:
    server.answer_for("Grade: ", PASS)
    server.script_for("Grade: Kenya", ["503", "503"])
    df = run(server, tmp_path)
    assert df["score_good"].tolist() == [True] * 4
    assert server.stats()["by_outcome"]["503"] == 2
    db = sqlite3.connect(tmp_path / "promptgrid.sqlite")
    assert db.execute("SELECT attempts FROM judge_calls WHERE idx = 2").fetchone() == (3,)
    assert db.execute("SELECT COUNT(*) FROM results").fetchone() == (4,)  # judges not mixed in
    db.close()


@pytest.mark.slow
def test_a_judge_call_that_fails_for_good_is_that_rows_error_and_retry_redoes_it(
    server: FaultServer, tmp_path: Path
) -> None:
    server.answer_for("Grade: ", PASS)
    server.script_for("Grade: Peru", ["400"])
    df = run(server, tmp_path)
    assert pd.isna(df["score_good"][1])
    assert json.loads(df["score_errors"][1])["good"].startswith("judge call failed: [bad_request]")
    again = promptgrid.retry(df["run_id"][0], results_dir=tmp_path, progress=False)
    assert again["score_good"].tolist() == [True] * 4


@pytest.mark.slow
def test_verdicts_come_from_the_cache_never_paid_twice(server: FaultServer, tmp_path: Path) -> None:
    server.answer_for("Grade: ", PASS)
    df = run(server, tmp_path)
    assert server.stats()["requests"] == 8
    rescored = promptgrid.score(df, results_dir=tmp_path, progress=False)
    assert server.stats()["requests"] == 8  # zero judge calls, zero graded calls
    assert rescored["score_good"].tolist() == [True] * 4
    second = run(server, tmp_path)  # a new run of the same experiment
    assert server.stats()["requests"] == 8
    assert second["cached"].all() and second["score_good"].tolist() == [True] * 4
    changed = experiment()
    changed["scores"]["good"]["judge"]["rubric"] += "\nBe strict."
    promptgrid.score(df, changed["scores"], results_dir=tmp_path, progress=False)
    assert server.stats()["requests"] == 12  # a new rubric is a new request: 4 new verdicts


@pytest.mark.slow
def test_judge_tokens_and_cost_are_reported_apart(server: FaultServer, tmp_path: Path) -> None:
    server.answer_for("Grade: ", PASS)
    df = run(server, tmp_path)
    assert (df["judge_tokens"] > 0).all()
    assert (df["judge_cost_usd"] > df["cost_usd"]).all()  # the judge is priced 10x here
    summary = promptgrid.summary(df, by=[])
    assert summary["judge_cost_usd"].iloc[0] == pytest.approx(df["judge_cost_usd"].sum())
    assert summary["cost_usd"].iloc[0] == pytest.approx(df["cost_usd"].sum())


@pytest.mark.slow
def test_the_runs_budget_stops_the_judges_too(server: FaultServer, tmp_path: Path) -> None:
    server.answer_for("Grade: ", PASS)
    # Graded calls cost at most ~$0.0001 each; a judge call ~$0.001, its worst case ~$0.007
    # (its prompt and its response_format schema at one token per byte, 60 output tokens).
    with pytest.raises(promptgrid.errors.BudgetExceeded):
        run(server, tmp_path, max_cost=0.009)
    db = sqlite3.connect(tmp_path / "promptgrid.sqlite")
    ((status,),) = db.execute("SELECT status FROM runs").fetchall()
    assert status == "stopped"
    judged = db.execute("SELECT COUNT(*) FROM judge_calls").fetchone()[0]
    spent = sum(c for (c,) in db.execute("SELECT cost_usd FROM judge_calls") if c)
    spent += sum(c for (c,) in db.execute("SELECT cost_usd FROM results") if c)
    db.close()
    assert 0 < judged < 4 and spent <= 0.009


@pytest.mark.parametrize(
    ("text", "scale", "value"),
    [
        pytest.param('{"verdict": "pass"}', None, 1.0, id="pass"),
        pytest.param('{"verdict": " Fail "}', None, 0.0, id="fail-any-case"),
        pytest.param('{"verdict": true}', None, 1.0, id="bool"),
        pytest.param('```\n{"verdict": "pass"}\n```', None, 1.0, id="fenced"),
        pytest.param('{"score": 3}', 5, 3.0, id="scale"),
        pytest.param('{"verdict": "passed"}', None, None, id="not-pass-or-fail"),
        pytest.param('Verdict: {"verdict": "pass"}', None, None, id="prose-around"),
        pytest.param('{"score": 0}', 5, None, id="below-scale"),
        pytest.param('{"score": true}', 5, None, id="bool-is-not-a-score"),
        pytest.param('{"score": NaN}', 5, None, id="nan"),
        pytest.param("", None, None, id="empty"),
    ],
)
def test_parse_verdict(text: str, scale: int | None, value: float | None) -> None:
    if value is None:
        with pytest.raises(ScoreFailure, match="unparseable verdict"):
            parse_verdict(text, scale)
    else:
        assert parse_verdict(text, scale)[0] == value


def test_a_plan_counts_the_judges_calls_and_cost(tmp_path: Path) -> None:
    exp = experiment()
    plain = {k: v for k, v in exp.items() if k != "scores"}
    judged = promptgrid.plan(exp, results_dir=tmp_path, base_url="http://127.0.0.1:9/v1")
    alone = promptgrid.plan(plain, results_dir=tmp_path, base_url="http://127.0.0.1:9/v1")
    assert (judged.judge_calls, alone.judge_calls) == (4, 0)
    assert judged.to_send == alone.to_send == 4
    assert judged.cost_worst_usd is not None and alone.cost_worst_usd is not None
    # Four judge calls at $10 per 1M tokens, each at least its rubric and its 60-token limit.
    assert judged.cost_worst_usd - alone.cost_worst_usd > 4 * 60 * 10 / 1e6
    assert any(line.split() == ["judge", "calls", "4"] for line in str(judged).splitlines())


@pytest.mark.slow
def test_ctrl_c_stops_the_judges_and_a_resume_finishes_them(
    server: FaultServer, tmp_path: Path
) -> None:
    import signal
    import sys

    import yaml

    sys.path.insert(0, str(Path(__file__).parent))
    from processes import rows, start, wait_for, wait_for_line

    exp = experiment()
    exp["providers"] = {"openai": {"base_url": server.base_url}}
    path = tmp_path / "judged.yaml"
    path.write_text(yaml.safe_dump(exp))
    results = tmp_path / "results"
    server.answer_for("Grade: ", PASS)
    server.configure(stall_s=30)
    server.script_for("Grade: ", ["stall"] * 4)  # every judge call hangs
    proc = start("run", str(path), "--results-dir", str(results), cwd=tmp_path)
    wait_for(lambda: rows(results) == 4 and server.stats()["in_flight"] >= 1)
    proc.send_signal(signal.SIGINT)
    wait_for_line(proc, "stopping")
    proc.send_signal(signal.SIGINT)  # the judges' calls on the wire: cancelled at once
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    resumed = start("run", str(path), "--results-dir", str(results), "--resume", cwd=tmp_path)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert "scores: good 1 (n=4)" in out
    answered = server.stats()["answered"]
    assert sum(n for text, n in answered.items() if text.startswith("What is")) == 4  # once
    df = promptgrid.load(results_dir=results)
    assert df["score_good"].tolist() == [True] * 4
