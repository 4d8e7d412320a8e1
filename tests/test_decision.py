"""decide(): the decision every view renders, on hand-built tables with numbers by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import promptgrid
from promptgrid.analysis.decision import LEVEL_COLUMNS, PAIR_COLUMNS, default_factors
from promptgrid.cli import main


def grid(rates: dict[str, list[bool]], temperatures: tuple[float, ...] = (0.0,),
         cost: dict[str, float] | None = None) -> pd.DataFrame:  # fmt: skip
    """A table shaped like a run's: prompts × questions × temperatures, pass/fail by hand."""
    rows = []
    for prompt, passed in rates.items():
        for t in temperatures:
            for i, ok in enumerate(passed):
                rows.append({"run_id": "r", "cell_id": f"{prompt}{t}{i}", "prompt": prompt,
                             "question": f"q{i}", "answer": f"a{i}", "model": "m",
                             "temperature": t, "repeat": 0, "choice": 0, "response": "x",
                             "status": "ok", "cost_usd": (cost or {}).get(prompt, 0.0),
                             "cached": False, "score_correct": ok})  # fmt: skip
    df = pd.DataFrame(rows)
    df["score_correct"] = df["score_correct"].astype("boolean")
    return df


def test_levels_pairs_and_verdicts_for_each_factor_and_score() -> None:
    df = grid({"A": [False] * 8 + [True] * 2, "B": [True] * 10, "C": [False] * 10},
              temperatures=(0.0, 1.0))  # fmt: skip
    decision = promptgrid.decide(df)
    assert decision.factors == ("prompt", "temperature")  # question and answer are cases
    assert decision.scores == ("score_correct",)
    assert list(decision.levels.columns) == LEVEL_COLUMNS
    assert list(decision.pairs.columns) == PAIR_COLUMNS
    prompt = decision.levels[decision.levels["factor"] == "prompt"].set_index("level")
    assert prompt["mean"].to_dict() == {"A": 0.2, "B": 1.0, "C": 0.0}
    assert prompt["best"].to_dict() == {"A": False, "B": True, "C": False}
    pairs = decision.pairs[decision.pairs["factor"] == "prompt"]
    assert list(zip(pairs["a"], pairs["b"], strict=True)) == [("B", "A"), ("B", "C")]
    # Each against the best, with the same numbers contrast gives with against="best".
    same = promptgrid.contrast(df, score="correct", against="best").pairs
    mine = pairs.drop(columns=["factor", "score"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, same, check_dtype=False)
    # B vs A: 16 of 20 pairs differ, all for B: p = 2 / 2^16; B vs C: 20 of 20, 2 / 2^20.
    # Holm: the smaller doubled, the larger times one (and never below the smaller).
    assert list(pairs["p_value"]) == pytest.approx([2 / 2**16, 2 / 2**20])
    assert list(pairs["p_adjusted"]) == pytest.approx([2 / 2**16, 4 / 2**20])
    assert decision.verdicts()[:2] == [
        "score_correct by prompt: B beats A: +80 points, p = 3.1e-05, Holm-adjusted over 2 "
        "comparisons",
        "score_correct by prompt: B beats C: +100 points, p = 3.8e-06, Holm-adjusted over 2 "
        "comparisons",
    ]
    assert decision.verdicts()[2].startswith("score_correct by temperature: too few pairs")
    assert decision.paired_on == {"prompt": ("question", "answer", "temperature"),
                                  "temperature": ("prompt", "question", "answer")}  # fmt: skip


def test_cost_per_call_and_the_pareto_front_by_hand() -> None:
    df = grid({"A": [True] * 8 + [False] * 2, "B": [True] * 7 + [False] * 3,
               "C": [True] * 6 + [False] * 4},
              cost={"A": 0.02, "B": 0.01, "C": 0.03})  # fmt: skip
    df.loc[df["prompt"] == "A", "cached"] = [True] + [False] * 9  # a cached call costs nothing
    df.loc[(df["prompt"] == "A") & df["cached"], "cost_usd"] = 0.0
    levels = promptgrid.decide(df).levels.set_index("level")
    assert levels["calls"].to_dict() == {"A": 10, "B": 10, "C": 10}
    assert levels["cost_per_call"].to_dict() == pytest.approx({"A": 0.02, "B": 0.01, "C": 0.03})
    # A is best, B cheapest; C scores less than both for more money.
    assert levels["pareto"].to_dict() == {"A": True, "B": True, "C": False}


def test_unknown_costs_leave_the_front_unknown() -> None:
    df = grid({"A": [True, False], "B": [True, True]}).assign(cost_usd=np.nan)
    levels = promptgrid.decide(df).levels
    assert levels["cost_per_call"].isna().all() and levels["pareto"].isna().all()


def test_the_heatmap_is_the_first_score_over_the_first_two_factors() -> None:
    df = grid({"A": [True, False, False, False], "B": [True, True, True, False]},
              temperatures=(0.0, 1.0))  # fmt: skip
    df.loc[(df["prompt"] == "B") & (df["temperature"] == 1.0), "score_correct"] = pd.NA
    heatmap = promptgrid.decide(df).heatmap
    assert heatmap is not None
    assert (heatmap.score, heatmap.x, heatmap.y) == ("score_correct", "prompt", "temperature")
    assert heatmap.x_levels == ["A", "B"] and heatmap.y_levels == [0.0, 1.0]
    assert heatmap.mean == [[0.25, 0.25], [0.75, None]]
    assert heatmap.samples == [[4, 4], [4, 0]]


def test_to_dict_is_strict_json() -> None:
    df = grid({"A": [True, False], "B": [True, True]}, temperatures=(0.0, 1.0))
    df["cost_usd"] = np.nan
    data = promptgrid.decide(df).to_dict()
    text = json.dumps(data, allow_nan=False)  # NaN would raise
    back = json.loads(text)
    assert back["factors"] == ["prompt", "temperature"]
    assert back["levels"][0]["cost_per_call"] is None
    assert {p["outcome"] for p in back["pairs"]} == {"too_few"}
    assert back["heatmap"]["mean"] == [[0.5, 0.5], [1.0, 1.0]]


def test_default_factors_are_the_axes_of_the_grid_not_the_cases() -> None:
    df = grid({"A": [True] * 4, "B": [False] * 4}, temperatures=(0.0, 1.0))
    df["tone"] = np.where(df.index % 2 == 0, "formal", "casual")  # crossed with the cases
    assert default_factors(df) == ["prompt", "temperature"]  # tone follows the question
    rows = []
    for tone in ("formal", "casual"):
        rows.append(grid({"A": [True] * 4, "B": [False] * 4}).assign(tone=tone))
    crossed = pd.concat(rows, ignore_index=True)
    assert default_factors(crossed) == ["prompt", "tone"]
    many = pd.concat([grid({"A": [True], "B": [False]}).assign(level=str(i)) for i in range(11)])
    assert default_factors(many) == ["prompt"]  # eleven values: data, not an axis


def test_a_factor_that_cannot_be_paired_is_refused_and_the_others_decided() -> None:
    df = grid({"A": [True, False, True], "B": [True, True, True]})
    df["label"] = ["x", "y", "x", "y", "y", "x"]  # a column of your own, differing by prompt
    decision = promptgrid.decide(df, factors=["prompt", "model"])
    assert "column 'label' is not an input of the grid" in decision.refused["prompt"]
    assert decision.refused.keys() == {"prompt"}
    assert decision.verdicts()[-1].startswith("prompt: cannot pair prompt='B' with prompt='A'")
    assert decision.verdicts()[-1].endswith("pass on=['question', 'answer']")
    assert promptgrid.decide(df, on=["question"], factors=["prompt"]).refused == {}


def test_bad_arguments_are_usage_errors() -> None:
    df = grid({"A": [True], "B": [False]})
    with pytest.raises(promptgrid.UsageError, match="no column 'flavour'"):
        promptgrid.decide(df, factors=["flavour"])
    with pytest.raises(promptgrid.UsageError, match="response is not a score"):
        promptgrid.decide(df, scores=["response"])
    assert str(promptgrid.decide(df.drop(columns=["score_correct"]))) == (
        "nothing to decide: no scores in the table"
    )


@pytest.mark.slow
def test_show_prints_the_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = {
        "name": "v", "provider": "echo", "vars": {"w": ["a", "b", "c"]}, "params": {"model": "m"},
        "prompts": {"short": "Say {{ w }}", "long": "Say {{ w }} twice"},
        "scores": {"brief": {"max_length": 14}},
    }  # fmt: skip
    promptgrid.run(experiment, results_dir=tmp_path, progress=False, formats="parquet")
    main(["show", "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "score_brief by prompt: too few pairs to tell: 3 of 3 pairs differ" in out
