"""Replaying a stored full-grid run as a race: ``promptgrid.replay`` and ``promptgrid replay``."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import promptgrid
from promptgrid.cli import main
from promptgrid.errors import UsageError
from promptgrid.race import Race, Rules, drive

#: Prompt "strong" answers yes 90 % of the time, "middle" 60 %, "weak" 20 % (echo repeats the
#: case column its prompt names; the score passes on "yes").
RACED = """\
name: raced
provider: echo
prompts:
  strong: "{{ hi }}"
  middle: "{{ mid }}"
  weak: "{{ lo }}"
cases_file: cases.csv
params:
  model: m
repeats: REPEATS
scores:
  correct: {contains: "yes"}
RACE
"""


def grid(write_yaml: Callable[..., Path], tmp_path: Path, *, cases: int = 120, repeats: int = 1,
         race: str = "race: {score: correct, min_cases: 10}") -> pd.DataFrame:  # fmt: skip
    rng = random.Random(1)
    rows = ["hi,mid,lo"] + [
        ",".join("yes" if rng.random() < p else "no" for p in (0.9, 0.6, 0.2)) for _ in range(cases)
    ]
    (tmp_path / "cases.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    text = RACED.replace("REPEATS", str(repeats)).replace("RACE", race)
    # The full grid (race=False): what a replay replays.
    return promptgrid.run(write_yaml(text), results_dir=tmp_path, progress=False, race=False)


@pytest.mark.slow
def test_replay_of_a_stored_run_names_the_best_and_counts_the_calls_it_saves(
    write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    df = grid(write_yaml, tmp_path)
    result = promptgrid.replay(df["run_id"][0], results_dir=tmp_path)  # the file's race:
    assert result.winner == "strong" == result.grid_best
    assert result.outcome.reason == "keep" and result.grid_calls == len(df) == 360
    table = result.table.set_index("prompt")
    assert list(table["status"]) == ["winner", "dropped", "dropped"]
    assert table.loc["weak", "dropped_round"] < table.loc["middle", "dropped_round"]
    assert (table.loc[["middle", "weak"], "against"] == "strong").all()
    assert (table.loc[["middle", "weak"], "lead_low"] > 0).all()
    # Calls: each variant's blocks until it went (the winner's until the race stopped).
    assert result.calls == table["calls"].sum() == table["after_blocks"].sum() + table.loc[
        "strong", "calls"] < 360  # fmt: skip
    text = repr(result)
    assert "winner: strong" in text and f"calls: {result.calls:,} of the full grid's 360" in text
    assert "round " in text and "by strong" in text


@pytest.mark.slow
def test_replay_agrees_with_the_core_driven_over_the_same_values(
    write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    df = grid(write_yaml, tmp_path)
    result = promptgrid.replay(df, race={"confidence": 0.9, "seed": 4}, results_dir=tmp_path)
    values = {p: [float(v) for v in g["score_correct"]] for p, g in df.groupby("prompt")}
    race = drive(Race.start(["strong", "middle", "weak"], 120, Rules(0.9, 10, 1, 4)),
                 lambda r: {v: [values[v][b] for b in r.blocks] for v in r.variants})  # fmt: skip
    assert result.outcome == race.outcome()


@pytest.mark.slow
def test_settings_override_the_files_and_keep_can_stop_at_two(
    write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    df = grid(write_yaml, tmp_path)
    result = promptgrid.replay(df, race={"keep": 2, "min_cases": 200}, results_dir=tmp_path)
    # min_cases above the 120 blocks: nothing can be dropped, all three are tied.
    assert result.outcome.reason == "exhausted" and result.calls == result.grid_calls
    assert set(result.table["status"]) == {"tied"} and "statistically tied" in repr(result)


@pytest.mark.slow
def test_repeats_stay_in_their_block_and_count_as_calls(
    write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    df = grid(write_yaml, tmp_path, cases=60, repeats=2)
    result = promptgrid.replay(df, results_dir=tmp_path)
    assert result.outcome.n_blocks == 60 and result.grid_calls == 360
    table = result.table.set_index("prompt")
    assert (table["calls"] == 2 * table["cases"]).all()  # two repeats a block, all answered


def test_identical_case_rows_are_distinct_blocks_and_error_rows_are_skipped() -> None:
    # Two-value cases repeat often; a block is a case row, not a distinct value.
    rows = []
    for prompt, rate in (("good", 0.95), ("bad", 0.05)):
        rng = random.Random(prompt)
        for i in range(80):
            score = rng.random() < rate if i % 10 else None  # every tenth: an error row
            topic = "x" if i % 2 else "y"
            rows.append({"run_id": "r", "cell_id": f"{prompt}{i}", "prompt": prompt,
                         "topic": topic, "repeat": 0, "score_ok": score})  # fmt: skip
    df = pd.DataFrame(rows)
    df["score_ok"] = df["score_ok"].astype("boolean")
    result = promptgrid.replay(df, race={"score": "ok", "min_cases": 10})
    assert result.outcome.n_blocks == 80 and result.winner == "good"
    (gone,) = result.outcome.eliminations
    assert gone.pairs < gone.blocks  # the error rows' blocks were not paired


def test_numeric_scores_are_normalised_to_their_bounds() -> None:
    rows = [{"prompt": p, "q": i, "score_rating": (5 if p == "a" else 1) if i % 3 else 3}
            for p in ("a", "b") for i in range(60)]  # fmt: skip
    df = pd.DataFrame(rows)
    result = promptgrid.replay(df, race={"score": "rating", "bounds": [1, 5], "min_cases": 10})
    assert result.winner == "a" and result.table["mean"].max() <= 5
    assert result.outcome.eliminations[0].estimate <= 1.0  # normalised units
    with pytest.raises(UsageError, match=r"score 3 is outside the race's range.*--bounds"):
        promptgrid.replay(df, race={"score": "rating"})


@pytest.mark.parametrize(
    ("race", "message"),
    [
        pytest.param({"score": "nope"}, "no score 'nope' in the table", id="unknown-score"),
        pytest.param({"score": "correct", "factor": "model"}, "1 value", id="factor-flat"),
        pytest.param(
            {"score": "correct", "factor": "colour"}, "no column 'colour'", id="unknown-factor"
        ),
        pytest.param({"score": "correct", "confidence": 1.5}, "race.confidence", id="confidence"),
        pytest.param({"score": "correct", "keep": 3}, "keep=3", id="keep-all"),
        pytest.param({"score": "correct", "colour": 1}, "race.colour", id="unknown-key"),
    ],
)
@pytest.mark.slow
def test_bad_settings_are_one_clear_message(
    write_yaml: Callable[..., Path], tmp_path: Path, race: dict, message: str
) -> None:
    df = grid(write_yaml, tmp_path, cases=20, race="")
    with pytest.raises(UsageError, match=message):
        promptgrid.replay(df, race=race, results_dir=tmp_path)


@pytest.mark.slow
def test_cli_replay_prints_the_race_and_refuses_bad_input(
    write_yaml: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = grid(write_yaml, tmp_path, race="")["run_id"][0]
    where = ["--results-dir", str(tmp_path)]
    main(["replay", run_id[:12], *where, "--score", "correct", "--min-cases", "10",
          "--confidence", "0.9", "--seed", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert "race on correct by prompt: confidence 0.9, min_cases 10, keep 1, seed 2" in out
    assert "winner: strong" in out and "saved)" in out
    for args, message in (
        ([], "which score decides the race?"),  # no race: in the file, no --score
        (["--score", "correct", "--keep", "3"], "nothing to race"),
        (["--score", "correct", "--bounds", "1"], "is not LOW,HIGH"),
        (["--score", "correct", "--confidence", "1.5"], "1.5"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["replay", run_id, *where, *args])
        assert info.value.code == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
