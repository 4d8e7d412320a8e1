"""Is variant B really better than variant A, or is that noise? ``contrast`` answers it.

For a factor of the grid (``prompt``, ``model``, ``temperature``, a var, ``run_id``) and a score,
every pair of the factor's levels is compared on *paired* cells: two cells pair when every other
input (prompt, case columns, vars, params, run) is the same, so each pair is the same question
put two ways. With repeats, a cell's value is the mean of its samples.

For each pair of levels ``a`` (first in the table) and ``b``:

- ``pairs``: cells answered under both (rows without a score — error rows — are left out);
- ``mean_a``, ``mean_b``: the mean score (a pass rate for a bool score) over those pairs;
- ``diff``: ``mean_b - mean_a``, with a bootstrap confidence interval (percentile method,
  resampling pairs; seeded, so the same table gives the same interval);
- the paired test: McNemar's exact test (a binomial test on the pairs that disagree) for a
  pass/fail score with one sample per cell; the Wilcoxon signed-rank test (pairs with no
  difference dropped) for numeric scores or means over repeats. Both come from scipy;
- ``informative``: the pairs that differ — the only ones either test learns from — and a
  ``verdict`` in words. With ``n`` informative pairs no result can be more significant than
  ``2 × 0.5^n`` (all of them one way), so fewer than 6 can never reach ``p < 0.05``: the
  verdict then says the sample is too small to tell, whatever the means look like.

Per level (``levels``): cells, samples, the mean with a confidence interval (Wilson's for a
pass rate, treating samples as independent; a bootstrap over cells for a numeric score) and,
with repeats, the spread within cells, ``pass@k`` (the chance that at least one of ``k``
samples passes, by the unbiased estimator of Chen et al. 2021) and the agreement across repeats
(how often two samples of a cell agree: on the score, and on the answer's text). ``cells``
holds those per cell.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UsageError
from .comparison import input_columns

__all__ = ["Contrast", "contrast", "pass_at_k"]

#: Bootstrap resamples for confidence intervals.
RESAMPLES = 9999


@dataclass(frozen=True, repr=False)
class Contrast:
    """What :func:`contrast` found: ``pairs`` (one row per pair of levels), ``levels`` (one row
    per level) and ``cells`` (one row per cell and level). Prints as a short report; a notebook
    shows the tables."""

    factor: str
    score: str
    kind: str  #: ``bool`` (pass/fail) or ``numeric``
    confidence: float
    pairs: pd.DataFrame
    levels: pd.DataFrame
    cells: pd.DataFrame

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        return self.report()

    def report(self) -> str:
        """The findings in words and small tables (what ``promptgrid contrast`` prints)."""
        pct = f"{self.confidence:.0%}"
        what = "pass rate" if self.kind == "bool" else "mean"
        lines = [f"{self.score} by {self.factor}: cells are paired on every other input", ""]
        levels = self.levels
        width = max([len(str(v)) for v in levels.index] + [len(self.factor)])
        head = f"  {self.factor:<{width}}  {'cells':>6}  {what:>9}  {pct + ' CI':>16}"
        extra = [c for c in levels.columns if c.startswith("pass@") or "agreement" in c]
        extra += ["spread"] if "spread" in levels.columns else []
        lines.append(head + "".join(f"  {c:>15}" for c in extra))
        for level, row in levels.iterrows():
            ci = f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
            cells = int(row["cells"])
            text = f"  {level!s:<{width}}  {cells:>6}  {_num(row['mean']):>9}  {ci:>16}"
            lines.append(text + "".join(f"  {_num(row[c]):>15}" for c in extra))
        for _, pair in self.pairs.iterrows():
            n = int(pair["pairs"])
            lines += [
                "",
                f"{pair['a']} vs {pair['b']}: {n} pair{'s' * (n != 1)}, "
                f"{pair['informative']} differ",
            ]
            if pair["pairs"]:
                lines.append(
                    f"  {what} {_num(pair['mean_a'])} -> {_num(pair['mean_b'])}, difference "
                    f"{_num(pair['diff'], sign=True)} ({pct} CI {_num(pair['ci_low'], sign=True)}"
                    f" to {_num(pair['ci_high'], sign=True)})"
                )
                lines.append(f"  {pair['test']}: p = {_p(pair['p_value'])}")
            lines.append(f"  {pair['verdict']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        verdicts = "".join(
            f"<li><b>{html.escape(str(p['a']))} vs {html.escape(str(p['b']))}</b>: "
            f"{html.escape(str(p['verdict']))}</li>"
            for _, p in self.pairs.iterrows()
        )
        return (
            f"<p><b>{html.escape(self.score)}</b> by <b>{html.escape(self.factor)}</b> "
            "(cells paired on every other input)</p>"
            f"<ul>{verdicts}</ul>{self.levels.to_html()}{self.pairs.to_html(index=False)}"
        )


def contrast(
    df: pd.DataFrame,
    *,
    factor: str = "prompt",
    score: str,
    confidence: float = 0.95,
    k: int | None = None,
    seed: int = 0,
) -> Contrast:
    """Compare the levels of ``factor`` on ``score``, on paired cells (see the module doc).

    Args:
        df: a result table (``run``, ``load``, ``score``; several runs concatenated too).
        factor: the input whose levels are compared: ``prompt``, ``model``, a var, ...
        score: the score, by name (``correct``) or column (``score_correct``); any numeric or
            bool column works.
        confidence: of the intervals; the tests' verdicts use ``1 - confidence`` as the level.
        k: for ``pass@k`` with repeats (default: the fewest samples of any cell).
        seed: of the bootstrap.

    Example::

        result = promptgrid.contrast(df, factor="prompt", score="correct")
        print(result)          # levels, and each pair: difference, CI, p-value, verdict
        result.pairs           # the same as a DataFrame
    """
    column = score if score in df.columns else f"score_{score}"
    for name in (column, factor):
        if name not in df.columns:
            scores = [c for c in df.columns if str(c).startswith("score_")]
            raise UsageError(
                f"no column {name!r} in the table; its scores: {', '.join(scores) or 'none'}"
            )
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be between 0 and 1, not {confidence}")
    kind, values = _values(df[column])
    keys = [c for c in input_columns(df) if c not in (factor, "repeat")]
    cells = _cells(df, keys, factor, values, k)
    levels = list(dict.fromkeys(df[factor].tolist()))
    alpha = 1 - confidence
    rng = np.random.default_rng(seed)
    rows = [
        _pair(cells, keys, factor, a, b, kind, confidence, alpha, rng)
        for a, b in itertools.combinations(levels, 2)
    ]
    pairs = pd.DataFrame(rows, columns=_PAIR_COLUMNS)
    per_level = _levels(cells, df, factor, column, levels, kind, confidence, rng)
    return Contrast(factor, column, kind, confidence, pairs, per_level, cells)


_PAIR_COLUMNS = [
    "a",
    "b",
    "pairs",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "informative",
    "verdict",
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of ``k`` samples drawn from ``n`` (``c`` of them passing)
    passes: ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"k={k} is more than the {n} samples")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _values(series: pd.Series) -> tuple[str, pd.Series]:
    """(kind, the values as floats with NaN for missing)."""
    present = series.dropna()
    if present.map(lambda v: isinstance(v, bool | np.bool_)).all():
        return "bool", series.map(lambda v: np.nan if pd.isna(v) else float(v)).astype(float)
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.notna().sum() < present.size:
        raise UsageError(f"{series.name} is not a score: its values are not numbers or bools")
    return "numeric", numbers.astype(float)


def _cells(
    df: pd.DataFrame, keys: list[str], factor: str, values: pd.Series, k: int | None
) -> pd.DataFrame:
    """One row per cell (keys + factor): samples, mean, std, and with repeats pass@k and
    agreement (on the score, and on the answer's text when there is one)."""
    work = df[[*keys, factor]].copy()
    work["__value__"] = values.to_numpy()
    if "response" in df.columns:
        work["__text__"] = df["response"].to_numpy()
    work = work[work["__value__"].notna()]
    groups = work.groupby([*keys, factor], sort=False, dropna=False)
    out = groups["__value__"].agg(n="size", mean="mean", std="std").reset_index()
    most = int(out["n"].max()) if len(out) else 1
    if most > 1:
        k = k or int(out["n"].min())
        binary = bool(work["__value__"].isin([0.0, 1.0]).all())
        scores = groups["__value__"].apply(list).to_numpy()
        if binary:
            out[f"pass@{k}"] = [
                pass_at_k(len(v), int(sum(v)), k) if len(v) >= k else np.nan for v in scores
            ]
        out["agreement"] = [_agreement(v) for v in scores]
        if "__text__" in work.columns:
            out["answer_agreement"] = [_agreement(v) for v in groups["__text__"].apply(list)]
    return out


def _agreement(values: Sequence[Hashable]) -> float:
    """How often two samples of a cell agree: the share of pairs of samples that are equal."""
    n = len(values)
    if n < 2:
        return np.nan
    counts = pd.Series(list(values)).value_counts(dropna=False)
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def _pair(
    cells: pd.DataFrame,
    keys: list[str],
    factor: str,
    a: Any,
    b: Any,
    kind: str,
    confidence: float,
    alpha: float,
    rng: np.random.Generator,
) -> list[Any]:
    from scipy import stats

    left = cells[cells[factor] == a]
    right = cells[cells[factor] == b]
    if keys:
        both = left.merge(right, on=keys, suffixes=("_a", "_b"))
    else:  # no other input: a single cell per level
        both = pd.concat(
            [
                left.add_suffix("_a").reset_index(drop=True),
                right.add_suffix("_b").reset_index(drop=True),
            ],
            axis=1,
        ).dropna(subset=["mean_a", "mean_b"])
    n = len(both)
    if n == 0:
        verdict = f"no pairs: no cell was scored under both {a} and {b}"
        return [a, b, 0, np.nan, np.nan, np.nan, np.nan, np.nan, "", np.nan, 0, verdict]
    x, y = both["mean_a"].to_numpy(float), both["mean_b"].to_numpy(float)
    d = y - x
    single = bool((both["n_a"] == 1).all() and (both["n_b"] == 1).all())
    if kind == "bool" and single:
        test = "McNemar exact test"
        gains, losses = int(((x == 0) & (y == 1)).sum()), int(((x == 1) & (y == 0)).sum())
        informative = gains + losses
        p = stats.binomtest(gains, informative, 0.5).pvalue if informative else 1.0
    else:
        test = "Wilcoxon signed-rank test"
        informative = int((d != 0).sum())
        p = float(stats.wilcoxon(d).pvalue) if informative else 1.0
    low, high = _bootstrap(d, confidence, rng)
    verdict = _verdict(a, b, float(d.mean()), n, informative, float(p), alpha)
    return [a, b, n, x.mean(), y.mean(), d.mean(), low, high, test, p, informative, verdict]


def _bootstrap(d: np.ndarray, confidence: float, rng: np.random.Generator) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of ``d`` (exact when all are equal)."""
    from scipy import stats

    if len(d) < 2 or np.all(d == d[0]):
        return (float(d[0]), float(d[0])) if len(d) else (np.nan, np.nan)
    result = stats.bootstrap(
        (d,),
        np.mean,
        confidence_level=confidence,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=rng,
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _verdict(a: Any, b: Any, diff: float, n: int, informative: int, p: float, alpha: float) -> str:
    """The finding in words; plain about a sample too small to tell."""
    need = next(m for m in itertools.count(1) if 2 * 0.5**m < alpha)
    if informative < need:
        return (
            f"too few pairs to tell: {informative} of {n} pairs differ, and at least {need} "
            f"must differ before any result could reach p < {alpha:g}"
        )
    if p < alpha:
        better, worse = (b, a) if diff > 0 else (a, b)
        return f"{better} scores higher than {worse} (p = {_p(p)} < {alpha:g})"
    return f"no clear difference (p = {_p(p)} >= {alpha:g}): it may be noise"


def _levels(
    cells: pd.DataFrame,
    df: pd.DataFrame,
    factor: str,
    column: str,
    levels: list[Any],
    kind: str,
    confidence: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    from scipy import stats

    rows = []
    for level in levels:
        mine = cells[cells[factor] == level]
        samples = int(mine["n"].sum())
        row: dict[str, Any] = {"cells": len(mine), "samples": samples}
        if kind == "bool" and samples:
            passed = round((mine["mean"] * mine["n"]).sum())
            ci = stats.binomtest(passed, samples).proportion_ci(confidence, method="wilson")
            row.update(mean=passed / samples, ci_low=ci.low, ci_high=ci.high)
        elif samples:
            low, high = _bootstrap(mine["mean"].to_numpy(float), confidence, rng)
            mean = float((mine["mean"] * mine["n"]).sum() / samples)
            row.update(mean=mean, ci_low=low, ci_high=high)
        else:
            row.update(mean=np.nan, ci_low=np.nan, ci_high=np.nan)
        if "agreement" in cells.columns:
            row["spread"] = mine["std"].mean()
            for name in [c for c in cells.columns if c.startswith("pass@")]:
                row[name] = mine[name].mean()
            row["agreement"] = mine["agreement"].mean()
            if "answer_agreement" in cells.columns:
                row["answer_agreement"] = mine["answer_agreement"].mean()
        rows.append(row)
    out = pd.DataFrame(rows, index=pd.Index(levels, name=factor))
    return out


def _num(value: Any, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.3g}" if sign else f"{value:.3g}"


def _p(p: float) -> str:
    return "1" if p >= 1 else f"{p:.2g}"
