"""contrast and summary's pass rates, against values computed by hand for small tables."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import promptgrid
from promptgrid.analysis import pass_at_k
from promptgrid.analysis.statistics import holm, signed_rank_p
from promptgrid.cli import main


def table(a: list[float | bool], b: list[float | bool], column: str = "score_correct",
          repeats: int = 1) -> pd.DataFrame:  # fmt: skip
    """A result table shaped like a run's: prompt A and B over the same questions."""
    rows = []
    for prompt, values in (("A", a), ("B", b)):
        for i, value in enumerate(values):
            rows.append({"run_id": "r", "prompt": prompt, "question": f"q{i // repeats}",
                         "model": "m", "repeat": i % repeats, "response": f"{prompt}{value}",
                         "status": "ok", column: value})  # fmt: skip
    df = pd.DataFrame(rows)
    if isinstance(a[0], bool):
        df[column] = df[column].astype("boolean")
    return df


def test_pass_fail_pairs_means_and_mcnemar_exact_p_by_hand() -> None:
    a = [True, False, False, False, False, False, False, False, True, False]
    b = [False, True, True, True, True, True, True, True, True, False]
    result = promptgrid.contrast(table(a, b), factor="prompt", score="correct")
    (pair,) = result.pairs.to_dict("records")
    assert (pair["a"], pair["b"], pair["pairs"]) == ("A", "B", 10)
    assert pair["mean_a"] == pytest.approx(0.2) and pair["mean_b"] == pytest.approx(0.8)
    assert pair["diff"] == pytest.approx(0.6)
    # 7 pairs B passes alone, 1 A passes alone: two-sided binomial, P = 2 (1 + 8) / 2^8.
    assert pair["test"] == "McNemar exact test" and pair["informative"] == 8
    assert pair["p_value"] == pytest.approx(18 / 256)
    # Student's t over the differences (7 of +1, 1 of -1, 2 of 0), cut at +1.
    sd = math.sqrt((7 * 0.4**2 + 1.6**2 + 2 * 0.6**2) / 9)
    half = stats.t.ppf(0.975, 9) * sd / math.sqrt(10)
    assert pair["ci_low"] == pytest.approx(0.6 - half) and pair["ci_high"] == 1.0
    assert pair["verdict"] == "no detectable difference between A and B: +60 points, p = 0.07"
    assert pair["outcome"] == "no_difference" and pair["winner"] is None
    levels = result.levels
    assert levels.loc["A", "mean"] == pytest.approx(0.2) and levels.loc["A", "cells"] == 10
    assert "McNemar exact test: p = 0.07" in str(result)


def test_numeric_scores_use_wilcoxon_signed_rank_by_hand() -> None:
    a = [1.0] * 8
    b = [2.0, 3.0, 4.0, -3.0, 6.0, 7.0, 8.0, 9.0]  # differences 1..8, the 4th negative
    result = promptgrid.contrast(table(a, b, "score_quality"), factor="prompt", score="quality")
    (pair,) = result.pairs.to_dict("records")
    # W- = 4; the subsets of ranks 1..8 summing to <= 4: {}, 1, 2, 3, 12, 4, 13 -> 7 of 256.
    assert pair["test"] == "Wilcoxon signed-rank test"
    assert pair["p_value"] == pytest.approx(2 * 7 / 256)
    assert pair["diff"] == pytest.approx(3.5) and pair["informative"] == 8
    assert pair["verdict"] == "no detectable difference between A and B: +3.5, p = 0.055"


@pytest.mark.parametrize("seed", range(4))
def test_the_signed_rank_test_with_ties_is_scipys_exact_permutation_test(seed: int) -> None:
    d = np.random.default_rng(seed).integers(-3, 4, 9).astype(float)  # ties and zeros
    d = d[d != 0]
    every_flip = stats.PermutationMethod(n_resamples=np.inf)
    assert signed_rank_p(d) == pytest.approx(stats.wilcoxon(d, method=every_flip).pvalue)


def test_above_fifty_differences_the_signed_rank_test_is_scipys_normal_approximation() -> None:
    d = np.random.default_rng(0).integers(-3, 4, 80).astype(float)
    d = d[d != 0]
    assert len(d) > 50
    assert signed_rank_p(d) == stats.wilcoxon(d, method="asymptotic").pvalue


def test_holm_multiplies_the_smallest_p_by_the_tests_left_and_keeps_the_order() -> None:
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> made non-decreasing
    assert list(holm(np.array([0.04, 0.01, np.nan, 0.03]))[[0, 1, 3]]) == pytest.approx(
        [0.06, 0.03, 0.06]
    )
    assert np.isnan(holm(np.array([0.04, 0.01, np.nan, 0.03]))[2])
    assert holm(np.array([0.9, 0.8]))[0] == 1.0


def test_a_clear_difference_names_the_better_level() -> None:
    a = [False] * 7 + [True]
    b = [True] * 8
    (pair,) = promptgrid.contrast(table(a, b), score="correct").pairs.to_dict("records")
    assert pair["p_value"] == pytest.approx(2 / 2**7)
    assert pair["verdict"] == "B beats A: +87.5 points, p = 0.016"
    assert (pair["outcome"], pair["winner"]) == ("better", "B")


def test_too_small_a_sample_is_said_plainly() -> None:
    result = promptgrid.contrast(table([False] * 5, [True] * 5), score="correct")
    (pair,) = result.pairs.to_dict("records")
    assert pair["p_value"] == pytest.approx(2 / 32)  # the best five pairs can do
    assert pair["verdict"] == (
        "too few pairs to tell: 5 of 5 pairs differ, and at least 6 must differ before any "
        "result could reach p < 0.05"
    )


def test_cells_pair_on_every_other_input_and_missing_scores_drop_out() -> None:
    df = table([True, False, True], [True, True, True])
    df.loc[(df["prompt"] == "B") & (df["question"] == "q2"), "score_correct"] = pd.NA
    extra = df[df["prompt"] == "A"].assign(prompt="C")  # pairs with nothing
    extra["question"] = ["other0", "other1", "other2"]
    result = promptgrid.contrast(pd.concat([df, extra]), score="score_correct")
    pairs = result.pairs.set_index(["a", "b"])
    assert pairs.loc[("A", "B"), "pairs"] == 2
    assert pairs.loc[("A", "C"), "pairs"] == 0
    assert pairs.loc[("A", "C"), "verdict"].startswith("no pairs")


def test_repeats_per_cell_mean_spread_pass_at_k_and_agreement() -> None:
    a = [True, True, False, False, False, False]  # q0: 2 of 3 pass, q1: none
    b = [True, True, True, True, False, True]
    result = promptgrid.contrast(table(a, b, repeats=3), score="correct")
    cells = result.cells.set_index(["question", "prompt"])
    assert cells.loc[("q0", "A"), "n"] == 3
    assert cells.loc[("q0", "A"), "mean"] == pytest.approx(2 / 3)
    assert cells.loc[("q0", "A"), "std"] == pytest.approx(math.sqrt(1 / 3))
    # pass@3 with 2 of 3 passing: 1 - C(1, 3) / C(3, 3) = 1; with none: 0.
    assert cells.loc[("q0", "A"), "pass@3"] == 1.0 and cells.loc[("q1", "A"), "pass@3"] == 0.0
    # agreement: pairs of samples that agree, (2*1 + 1*0) / (3*2) = 1/3; all alike: 1.
    assert cells.loc[("q0", "A"), "agreement"] == pytest.approx(1 / 3)
    assert cells.loc[("q1", "A"), "agreement"] == 1.0
    assert result.levels.loc["A", "pass@3"] == pytest.approx(0.5)
    assert result.levels.loc["A", "samples"] == 6
    assert result.pairs["test"][0] == "Wilcoxon signed-rank test"  # means over repeats
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))


def test_a_numeric_level_has_a_t_interval_over_its_cells() -> None:
    a = [1.0, 2.0, 4.0, 5.0]
    result = promptgrid.contrast(table(a, a, "score_quality"), score="quality")
    half = stats.t.ppf(0.975, 3) * float(np.std(a, ddof=1)) / 2
    assert result.levels.loc["A", "mean"] == 3.0
    assert result.levels.loc["A", "ci_low"] == pytest.approx(3.0 - half)
    assert result.levels.loc["A", "ci_high"] == pytest.approx(3.0 + half)
    (pair,) = result.pairs.to_dict("records")
    assert (pair["ci_low"], pair["ci_high"]) == (0.0, 0.0)  # every difference is 0


def test_bad_arguments_are_usage_errors() -> None:
    df = table([True], [False])
    with pytest.raises(promptgrid.UsageError, match="its scores: score_correct"):
        promptgrid.contrast(df, score="nope")
    with pytest.raises(promptgrid.UsageError, match="no column 'flavour'"):
        promptgrid.contrast(df, factor="flavour", score="correct")


def test_summary_shows_pass_rates_with_wilson_intervals() -> None:
    df = table([True, True, True] + [False] * 7, [True] * 10)
    out = promptgrid.summary(df, by=["prompt"])
    assert out.loc["A", "score_correct"] == pytest.approx(0.3)
    z, n, p = 1.959963984540054, 10, 0.3  # Wilson's interval, by its formula
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert out.loc["A", "score_correct_low"] == pytest.approx(centre - half)
    assert out.loc["A", "score_correct_high"] == pytest.approx(centre + half)
    assert out.loc["B", "score_correct_high"] == pytest.approx(1.0)
    assert list(out.columns[:3]) == ["calls", "errors", "error_rate"]  # unchanged columns first


CAPITALS = """\
name: cap
provider: echo
prompts:
  closed_book: "What is the capital of {{ country }}? Answer with the city only."
  open_book: "Atlas: {{ atlas }}\\nWhat is the capital of {{ country }}? Answer with the city only."
cases:
CASES
params: {model: gpt-4o-mini, max_tokens: 40}
scores:
  correct: {icontains: "{{ expected }}"}
"""


@pytest.mark.slow
def test_cli_contrast_on_a_run(
    write_yaml: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = "\n".join(
        f"  - {{country: C{i}, expected: City{i}, atlas: 'C{i}: capital City{i}'}}"
        for i in range(8)
    )
    path = write_yaml(CAPITALS.replace("CASES", cases))
    df = promptgrid.run(path, results_dir=tmp_path, progress=False)
    main(["contrast", df["run_id"][0], "--results-dir", str(tmp_path), "--score", "correct"])
    out = capsys.readouterr().out
    assert "closed_book vs open_book: 8 pairs, 8 differ" in out
    assert "McNemar exact test: p = 0.0078" in out  # 2 / 2^8
    assert "open_book beats closed_book: +100 points, p = 0.0078" in out
    assert "cells paired on country, expected, atlas (fixed: run_id, model, max_tokens)" in out


# ------------------------------------------------------------- pairing by name, on a run

EIGHT = "\n".join(
    f"  - {{country: C{i}, expected: City{i}, atlas: 'C{i}: {'City' if i % 4 else 'Town'}{i}'}}"
    for i in range(8)
)


@pytest.fixture(scope="module")
def capitals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A capitals run on echo (8 countries, 2 prompts): open_book is right 6 times of 8,
    closed_book never."""
    folder = tmp_path_factory.mktemp("capitals")
    path = folder / "capitals.yaml"
    text = CAPITALS.replace("CASES", EIGHT).replace(
        "scores:\n", "scores:\n  short: {max_length: 30}\n"
    )
    path.write_text(text, encoding="utf-8")
    df = promptgrid.run(path, results_dir=folder, progress=False, formats="csv")
    return folder, df


def pairs_of(df: pd.DataFrame, score: str = "correct", on: list[str] | None = None
             ) -> tuple[int, int, float]:  # fmt: skip
    (pair,) = promptgrid.contrast(df, score=score, on=on).pairs.to_dict("records")
    return pair["pairs"], pair["informative"], pair["p_value"]


def test_a_column_subset_a_csv_and_a_concatenation_pair_as_the_whole_table(
    capitals: tuple[Path, pd.DataFrame],
) -> None:
    folder, df = capitals
    whole = pairs_of(df)
    assert whole == (8, 6, pytest.approx(2 / 2**6))
    # The score column once became a pairing key wherever it sat (7 pairs, 0 differ, p = 1).
    assert pairs_of(df[["prompt", "country", "score_correct"]]) == whole
    assert pairs_of(df[["score_correct", "response", "country", "prompt"]]) == whole
    assert pairs_of(df[["prompt", "expected", "score_correct", "score_errors"]]) == whole
    (csv,) = folder.glob("cap/*/results.csv")
    assert pairs_of(pd.read_csv(csv)) == whole
    result = promptgrid.contrast(df, score="correct")
    assert result.paired_on == ("country", "expected", "atlas")
    assert result.fixed == ("run_id", "model", "max_tokens")


def test_a_subset_without_the_inputs_is_refused_saying_what_to_keep(
    capitals: tuple[Path, pd.DataFrame],
) -> None:
    _, df = capitals
    with pytest.raises(promptgrid.UsageError, match="Keep the columns that tell them apart"):
        promptgrid.contrast(df[["prompt", "score_correct"]], score="correct")
    twice = pd.concat([df, df.assign(run_id="another")], ignore_index=True)
    assert pairs_of(twice)[0] == 16  # each run's cells pair within the run
    with pytest.raises(promptgrid.UsageError, match=r"run_id \(several runs\)"):
        promptgrid.contrast(twice.drop(columns=["run_id"]), score="correct")


def test_a_hand_built_table_pairs_by_name_and_with_on() -> None:
    rng = np.random.default_rng(0)
    questions = [f"q{i}" for i in range(30)]
    a = rng.random(30) < 0.5
    b = a.copy()
    b[:10] = ~b[:10]  # 10 of 30 differ
    df = pd.DataFrame({"prompt": ["A"] * 30 + ["B"] * 30, "case": questions * 2,
                       "score": np.concatenate([a, b])})  # fmt: skip
    assert pairs_of(df, "score")[:2] == pairs_of(df, "score", on=["case"])[:2] == (30, 10)
    with pytest.raises(promptgrid.UsageError, match="on= names no column 'nope'"):
        promptgrid.contrast(df, score="score", on=["nope"])
    with pytest.raises(promptgrid.UsageError, match="Add to on= the input that tells them apart"):
        promptgrid.contrast(df, score="score", on=[])


def test_against_compares_each_level_with_a_baseline_or_the_best() -> None:
    df = table([True] * 8, [False] * 8)
    third = df[df["prompt"] == "A"].assign(prompt="C")
    df = pd.concat([df, third], ignore_index=True)
    base = promptgrid.contrast(df, score="correct", against="B").pairs
    assert list(zip(base["a"], base["b"], strict=True)) == [("B", "A"), ("B", "C")]
    assert (base["p_adjusted"] == 2 * base["p_value"]).all()  # Holm over two tests, both 1/128
    assert (
        base["verdict"][0] == "A beats B: +100 points, p = 0.016, Holm-adjusted over 2 comparisons"
    )
    best = promptgrid.contrast(df, score="correct", against="best").pairs
    assert list(best["a"]) == ["A", "A"]
    with pytest.raises(promptgrid.UsageError, match="against='D' is not a level of prompt"):
        promptgrid.contrast(df, score="correct", against="D")


# -------------------------------------------------------------------- run against run


@pytest.mark.slow
def test_two_runs_pair_by_their_inputs_leaving_out_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = CAPITALS.replace("CASES", EIGHT)
    two = one.replace("gpt-4o-mini", "gpt-4.1-nano").replace(
        '"What is the capital', '"Atlas: {{ atlas }}\\nWhat is the capital'
    )
    ids = []
    for name, text in (("one.yaml", one), ("two.yaml", two)):
        (tmp_path / name).write_text(text, encoding="utf-8")
        df = promptgrid.run(
            tmp_path / name, results_dir=tmp_path, progress=False, formats="parquet"
        )
        ids.append(df["run_id"][0])
    both = pd.concat([promptgrid.load(i, results_dir=tmp_path) for i in ids], ignore_index=True)
    result = promptgrid.contrast(both, factor="run_id", score="correct")
    (pair,) = result.pairs.to_dict("records")
    # closed_book went from 0 to 6 of 8; open_book stayed at 6 of 8.
    assert (pair["pairs"], pair["informative"]) == (16, 6)
    assert pair["changed"] == {"model": (["gpt-4o-mini"], ["gpt-4.1-nano"])}
    assert result.paired_on == ("prompt", "country", "expected", "atlas")
    assert pair["winner"] == ids[1]
    main(["contrast", ids[0], ids[1], "--results-dir", str(tmp_path), "--score", "correct"])
    out = capsys.readouterr().out
    assert f"{ids[0]} vs {ids[1]}: 16 pairs, 6 differ" in out
    assert "model changed with run_id, left out of the pairing: gpt-4o-mini -> gpt-4.1-nano" in out
    assert f"{ids[1]} beats {ids[0]}: +37.5 points, p = 0.031" in out


def test_cli_contrast_takes_every_score_and_refuses_a_table_without_one(
    capitals: tuple[Path, pd.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, df = capitals
    main(["contrast", df["run_id"][0], "--results-dir", str(folder)])
    out = capsys.readouterr().out
    assert "score_short by prompt" in out and "score_correct by prompt" in out
    path = folder / "plain.yaml"
    path.write_text(CAPITALS.replace("CASES", EIGHT).split("scores:")[0], encoding="utf-8")
    plain = promptgrid.run(path, results_dir=folder, progress=False, formats="parquet")
    with pytest.raises(SystemExit) as stopped:
        main(["contrast", plain["run_id"][0], "--results-dir", str(folder)])
    assert stopped.value.code == 2
    assert "the run has no scores" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_contrast_prints_control_characters_of_levels_as_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = {
        "name": "esc", "provider": "echo", "params": {"model": "m"},
        "prompts": {"plain\x1b[2J": "{{ w }}", "other": "say {{ w }}"},
        "vars": {"w": ["a", "b"]}, "scores": {"short": {"max_length": 8}},
    }  # fmt: skip
    df = promptgrid.run(experiment, results_dir=tmp_path, progress=False, formats="parquet")
    main(["contrast", df["run_id"][0], "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "plain\\x1b[2J vs other" in out
