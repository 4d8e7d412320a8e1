"""Is variant B really better than variant A, or is that noise? ``contrast`` answers it.

For a factor of the grid (``prompt``, ``model``, ``temperature``, a var, ``run_id``) and a score,
levels are compared on *paired* cells: two cells pair when they agree on every other input, so
each pair is the same question put two ways. Which columns are inputs, and when the table
cannot say which cells pair, is :mod:`promptgrid.analysis.pairing`'s rule: by name, never on a
result, score or judge column; ``on=`` names them for a hand-built table. With repeats, a
cell's value is the mean of its samples.

For each pair of levels ``a`` and ``b`` (every pair; or each level against one, ``against``):

- ``pairs``: cells answered under both (rows without a score — error rows — are left out);
- ``mean_a``, ``mean_b``: the mean score (a pass rate for a bool score) over those pairs;
- ``diff``: ``mean_b - mean_a``, with Student's t interval over the paired differences
  (scipy's t distribution; for a pass/fail score kept within -1 .. 1);
- the paired test: McNemar's exact test (a binomial test on the pairs that disagree) for a
  pass/fail score with one sample per cell; the Wilcoxon signed-rank test (pairs with no
  difference dropped) for numeric scores or means over repeats. Both come from scipy;
- ``p_adjusted``: with several pairs, Holm's adjustment over them (each pair is a test: with
  ten of them, one in two sets of noise would show a "p < 0.05" somewhere); the verdict uses it;
- ``informative``: the pairs that differ — the only ones either test learns from — and a
  verdict (:func:`verdict`). With ``n`` informative pairs no result can be more significant
  than ``2 × 0.5^n`` (all of them one way), so fewer than 6 can never reach ``p < 0.05``: the
  verdict then says the sample is too small to tell, whatever the means look like;
- ``changed``: inputs left out of this pair's pairing because they changed along with the
  factor (run against run: the model), with their values under ``a`` and ``b``.

Per level (``levels``): cells, samples, the mean with a confidence interval (Wilson's for a
pass rate, treating samples as independent; Student's t over cell means for a numeric score)
and, with repeats, the spread within cells, ``pass@k`` (the chance that at least one of ``k``
samples passes, by the unbiased estimator of Chen et al. 2021) and the agreement across repeats
(how often two samples of a cell agree: on the score, and on the answer's text). ``cells``
holds those per cell.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UsageError
from .pairing import Match, Pairing, codes, pair, shown
from .statistics import (
    holm,
    number,
    p_text,
    pass_at_k,
    sign_test_p,
    signed_rank_p,
    t_half,
    t_interval,
    verdict,
    wilson_interval,
)  # fmt: skip

__all__ = ["Contrast", "contrast", "pass_at_k", "verdict"]


@dataclass(frozen=True, repr=False)
class Contrast:
    """What :func:`contrast` found: ``pairs`` (one row per pair of levels), ``levels`` (one row
    per level) and ``cells`` (one row per cell and level); ``paired_on``: the inputs that
    paired the cells (those that vary), ``fixed``: the other inputs (one value each). Prints as
    a short report; a notebook shows the tables."""

    factor: str
    score: str
    kind: str  #: ``bool`` (pass/fail) or ``numeric``
    confidence: float
    paired_on: tuple[str, ...]
    fixed: tuple[str, ...]
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
        lines = [f"{self.score} by {self.factor}: {self.pairing_text()}", ""]
        levels = self.levels
        width = max([len(str(v)) for v in levels.index] + [len(self.factor)])
        head = f"  {self.factor:<{width}}  {'cells':>6}  {what:>9}  {pct + ' CI':>16}"
        extra = [c for c in levels.columns if c.startswith("pass@") or "agreement" in c]
        extra += ["spread"] if "spread" in levels.columns else []
        lines.append(head + "".join(f"  {c:>15}" for c in extra))
        for level, row in levels.iterrows():
            ci = f"[{number(row['ci_low'])}, {number(row['ci_high'])}]"
            cells = int(row["cells"])
            text = f"  {level!s:<{width}}  {cells:>6}  {number(row['mean']):>9}  {ci:>16}"
            lines.append(text + "".join(f"  {number(row[c]):>15}" for c in extra))
        for _, pair_row in self.pairs.iterrows():
            lines += ["", *self._pair_lines(pair_row, what, pct)]
        return "\n".join(lines)

    def pairing_text(self) -> str:
        """Which inputs paired the cells, in words."""
        text = "cells paired on " + (", ".join(self.paired_on) or "nothing (one cell a level)")
        return text + (f" (fixed: {', '.join(self.fixed)})" if self.fixed else "")

    def _pair_lines(self, pair_row: pd.Series, what: str, pct: str) -> list[str]:
        n = int(pair_row["pairs"])
        lines = [f"{pair_row['a']} vs {pair_row['b']}: {n} pair{'s' * (n != 1)}, "
                 f"{pair_row['informative']} differ"]  # fmt: skip
        for name, (under_a, under_b) in (pair_row["changed"] or {}).items():
            lines.append(f"  {name} changed with {self.factor}, left out of the pairing: "
                         f"{_listed(under_a)} -> {_listed(under_b)}")  # fmt: skip
        if n:
            a, b = (number(pair_row[k]) for k in ("mean_a", "mean_b"))
            low, high = (number(pair_row[k], sign=True) for k in ("ci_low", "ci_high"))
            lines.append(
                f"  {what} {a} -> {b}, difference {number(pair_row['diff'], sign=True)} "
                f"({pct} CI {low} to {high})"
            )
            p, adjusted = pair_row["p_value"], pair_row["p_adjusted"]
            holm_text = f", Holm-adjusted {p_text(adjusted)}" if adjusted != p else ""
            lines.append(f"  {pair_row['test']}: p = {p_text(p)}{holm_text}")
        lines.append(f"  {pair_row['verdict']}")
        return lines

    def _repr_html_(self) -> str:
        verdicts = "".join(
            f"<li><b>{html.escape(str(p['a']))} vs {html.escape(str(p['b']))}</b>: "
            f"{html.escape(str(p['verdict']))}</li>"
            for _, p in self.pairs.iterrows()
        )
        return (
            f"<p><b>{html.escape(self.score)}</b> by <b>{html.escape(self.factor)}</b> "
            f"({html.escape(self.pairing_text())})</p>"
            f"<ul>{verdicts}</ul>{self.levels.to_html()}{self.pairs.to_html(index=False)}"
        )


def contrast(
    df: pd.DataFrame,
    *,
    factor: str = "prompt",
    score: str,
    on: Sequence[str] | None = None,
    against: Any = None,
    confidence: float = 0.95,
    k: int | None = None,
) -> Contrast:
    """Compare the levels of ``factor`` on ``score``, on paired cells (see the module doc).

    Args:
        df: a result table (``run``, ``load``, ``score``; several runs concatenated; a subset
            of its columns; a CSV read back), or a table of your own.
        factor: the input whose levels are compared: ``prompt``, ``model``, a var,
            ``run_id`` (runs concatenated), ...
        score: the score, by name (``correct``) or column (``score_correct``); any numeric or
            bool column works.
        on: the inputs that pair cells, for a table of your own (default: every input, told
            by name: see :mod:`promptgrid.analysis.pairing`).
        against: compare each level with this one only (a baseline), or with ``"best"``, the
            level with the highest mean (default: every pair of levels).
        confidence: of the intervals; the tests' verdicts use ``1 - confidence`` as the level.
        k: for ``pass@k`` with repeats (default: the fewest samples of any cell).

    Raises:
        UsageError: a column is missing; or the table cannot say which cells pair (a cell
            appears twice under one level; a column conflicts): the message says what to
            keep or pass.

    Example::

        result = promptgrid.contrast(df, factor="prompt", score="correct")
        print(result)          # levels, and each pair: difference, CI, p-value, verdict
        result.pairs           # the same as a DataFrame
        promptgrid.contrast(pd.concat([load(a), load(b)]), factor="run_id", score="correct")
    """
    column = score_column(df, score)
    _require_factor(df, factor)
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be between 0 and 1, not {confidence}")
    return contrast_paired(pair(df, factor, on, [column]), df, column, against, confidence, k)


def score_column(df: pd.DataFrame, score: str) -> str:
    """The column of a score given by name or column; a clear error if there is none."""
    column = score if score in df.columns else f"score_{score}"
    if column not in df.columns:
        scores = [str(c) for c in df.columns if str(c).startswith("score_")]
        raise UsageError(
            f"no column {column!r} in the table; its scores: {', '.join(scores) or 'none'}"
        )
    return column


def contrast_paired(
    pairing: Pairing,
    df: pd.DataFrame,
    column: str,
    against: Any,
    confidence: float,
    k: int | None = None,
) -> Contrast:
    """:func:`contrast` on cells already paired (``decide`` pairs once for every score)."""
    kind, values = score_values(df[column])
    cells = _cell_stats(pairing, values.to_numpy(float), df, k)
    levels = _levels(cells, pairing, kind, confidence)
    pairs = _pairs(pairing, cells, levels, kind, confidence, against)
    varying = pairing.varying()
    shown_cells = _shown_cells(pairing, df, cells)
    # An input every pair left out (it changed with the factor) paired nothing.
    changed = [set(c or ()) for c in pairs["changed"]]
    left_out = set.intersection(*changed) if changed else set()
    return Contrast(
        factor=pairing.factor,
        score=column,
        kind=kind,
        confidence=confidence,
        paired_on=tuple(c for c in varying if c not in left_out),
        fixed=tuple(c for c in pairing.on if c not in varying),
        pairs=pairs,
        levels=levels,
        cells=shown_cells,
    )


_PAIR_COLUMNS = [
    "a", "b", "pairs", "informative", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "test",
    "p_value", "p_adjusted", "outcome", "winner", "verdict", "changed",
]  # fmt: skip


# ------------------------------------------------------------------------------ cells


def _require_factor(df: pd.DataFrame, factor: str) -> None:
    if factor not in df.columns:
        raise UsageError(
            f"no column {factor!r} in the table to compare levels of; "
            f"it has {', '.join(map(str, df.columns))}"
        )


def score_values(series: pd.Series) -> tuple[str, pd.Series]:
    """A score column read one way for every view: ``(kind, values)``, kind ``bool`` (a
    pass/fail score, whatever its dtype: ``bool``, ``boolean``, objects from a CSV) or
    ``numeric``, the values as floats with NaN for missing."""
    if pd.api.types.is_bool_dtype(series):
        floats = series.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        return "bool", pd.Series(floats, index=series.index, name=series.name)
    present = series.dropna()
    if len(present) and present.map(lambda v: isinstance(v, bool | np.bool_)).all():
        return "bool", series.map(lambda v: np.nan if pd.isna(v) else float(v)).astype(float)
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.notna().sum() < present.size:
        raise UsageError(f"{series.name} is not a score: its values are not numbers or bools")
    return "numeric", numbers.astype(float)


def _cell_stats(
    pairing: Pairing, values: np.ndarray, df: pd.DataFrame, k: int | None
) -> pd.DataFrame:
    """Per cell (all of them, scored or not): samples ``n``, ``mean``, ``std``, and with
    repeats ``pass@k`` and the agreements. Vectorised: one bincount per statistic."""
    scored = ~np.isnan(values)
    cell, value = pairing.row_cell[scored], values[scored]
    size = pairing.cells
    n = np.bincount(cell, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(cell, value, size) / n
        spread = np.bincount(cell, (value - mean[cell]) ** 2, size) / (n - 1)
    out = pd.DataFrame({"n": n, "mean": mean, "std": np.sqrt(np.where(n > 1, spread, np.nan))})
    if n.max(initial=0) > 1:
        k = k or int(n[n > 0].min())
        if np.isin(value, (0.0, 1.0)).all():
            passed = np.bincount(cell, value, size)
            ok = n >= k
            at_k = np.full(size, np.nan)
            at_k[ok] = pass_at_k(n[ok], passed[ok], k)
            out[f"pass@{k}"] = at_k
        out["agreement"] = _agreement(cell, pd.factorize(value)[0], n)
        if "response" in df.columns:
            out["answer_agreement"] = _agreement(cell, codes(df["response"])[0][scored], n)
    return out


def _agreement(cell: np.ndarray, code: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per cell, how often two of its samples agree (their values' codes are equal): the
    share of pairs of samples that are equal (NaN with fewer than two samples)."""
    both = pd.factorize(cell * (int(code.max(initial=0)) + 1) + code)[0]
    counts = np.bincount(both)
    owner = np.zeros(len(counts), dtype=np.int64)
    owner[both] = cell
    same = np.bincount(owner, counts * (counts - 1.0), len(n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, same / (n * (n - 1.0)), np.nan)


def _shown_cells(pairing: Pairing, df: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with the inputs and the level of each, scored cells only."""
    scored = np.flatnonzero(cells["n"].to_numpy() > 0)
    rows = pairing.cell_row[scored]
    names = [*pairing.varying(), pairing.factor]
    inputs = df[names].iloc[rows].reset_index(drop=True)
    return pd.concat([inputs, cells.iloc[scored].reset_index(drop=True)], axis=1)


# ----------------------------------------------------------------------------- levels


def _levels(cells: pd.DataFrame, pairing: Pairing, kind: str, confidence: float) -> pd.DataFrame:
    """One row per level (in the table's order): its scored cells and samples, the mean (a
    pass rate) with its interval, and with repeats the means of the cells' extras."""
    n = cells["n"].to_numpy()
    scored = n > 0
    level, size = pairing.cell_level[scored], len(pairing.levels)
    mean = cells["mean"].to_numpy(float)[scored]
    count = np.bincount(level, minlength=size)
    samples = np.bincount(level, n[scored], size).astype(int)
    total = np.bincount(level, mean * n[scored], size)
    out = pd.DataFrame({"cells": count, "samples": samples}, index=pd.RangeIndex(size))
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "bool":
            passed = np.round(total).astype(int)
            out["mean"] = np.where(samples > 0, passed / samples, np.nan)
            out["ci_low"], out["ci_high"] = wilson_interval(passed, samples, confidence)
        else:  # t over the cells' means
            centre = np.bincount(level, mean, size) / count
            spread = np.bincount(level, (mean - centre[level]) ** 2, size) / (count - 1)
            half = t_half(np.sqrt(spread), count, confidence)
            out["mean"] = np.where(samples > 0, total / samples, np.nan)
            out["ci_low"], out["ci_high"] = centre - half, centre + half
        if "agreement" in cells.columns:
            extras = ["std", *[c for c in cells.columns if c.startswith("pass@")], "agreement"]
            extras += ["answer_agreement"] if "answer_agreement" in cells.columns else []
            for name in extras:
                values = cells[name].to_numpy(float)[scored]
                known = ~np.isnan(values)
                found = np.bincount(level[known], values[known], size)
                mean_of = found / np.bincount(level[known], minlength=size)
                out["spread" if name == "std" else name] = mean_of
    out.index = pd.Index(pairing.levels, name=pairing.factor)
    return out


# ------------------------------------------------------------------------------ pairs


def _pairs(
    pairing: Pairing,
    cells: pd.DataFrame,
    levels: pd.DataFrame,
    kind: str,
    confidence: float,
    against: Any,
) -> pd.DataFrame:
    """One row per pair of levels compared, with Holm's adjustment over them."""
    compared = _compared(pairing, levels, against)
    found = [_pair(pairing, cells, a, b, kind, confidence) for a, b in compared]
    p = np.array([f["p_value"] for f in found], dtype=float)
    adjusted = holm(p)
    tests = int((~np.isnan(p)).sum())
    alpha = 1 - confidence
    for found_pair, p_adjusted in zip(found, adjusted, strict=True):
        found_pair["p_adjusted"] = p_adjusted
        outcome, winner, words = verdict(
            found_pair["a"], found_pair["b"], kind=kind, diff=found_pair["diff"],
            pairs=found_pair["pairs"], informative=found_pair["informative"],
            p=p_adjusted, alpha=alpha, tests=tests, unshared=found_pair.pop("unshared"),
        )  # fmt: skip
        found_pair.update(outcome=outcome, winner=winner, verdict=words)
    return pd.DataFrame(found, columns=_PAIR_COLUMNS)


def _compared(pairing: Pairing, levels: pd.DataFrame, against: Any) -> list[tuple[int, int]]:
    """The pairs of level codes to compare: all of them, or each against one."""
    count = len(pairing.levels)
    if against is None:
        return list(itertools.combinations(range(count), 2))
    if isinstance(against, str) and against == "best" and "best" not in pairing.levels:
        means = levels["mean"].to_numpy(float)
        base = int(np.nanargmax(means)) if np.isfinite(means).any() else 0
    elif against in pairing.levels:
        base = pairing.levels.index(against)
    else:
        raise UsageError(
            f"against={shown(against)} is not a level of {pairing.factor}; its levels: "
            f"{', '.join(map(shown, pairing.levels))} (or 'best')"
        )
    return [(base, other) for other in range(count) if other != base]


def _pair(
    pairing: Pairing, cells: pd.DataFrame, a: int, b: int, kind: str, confidence: float
) -> dict[str, Any]:
    match: Match = pairing.match(a, b)
    n_cell = cells["n"].to_numpy()
    scored = (n_cell[match.a_cells] > 0) & (n_cell[match.b_cells] > 0)
    left, right = match.a_cells[scored], match.b_cells[scored]
    mean = cells["mean"].to_numpy(float)
    x, y = mean[left], mean[right]
    d = y - x
    out: dict[str, Any] = {
        "a": pairing.levels[a], "b": pairing.levels[b], "pairs": len(d), "informative": 0,
        "mean_a": np.nan, "mean_b": np.nan, "diff": np.nan, "ci_low": np.nan,
        "ci_high": np.nan, "test": "", "p_value": np.nan, "changed": match.changed,
        "unshared": match.unshared,
    }  # fmt: skip
    if not len(d):
        return out
    single = bool((n_cell[left] == 1).all() and (n_cell[right] == 1).all())
    if kind == "bool" and single:
        test = "McNemar exact test"
        gains, losses = int(((x == 0) & (y == 1)).sum()), int(((x == 1) & (y == 0)).sum())
        informative = gains + losses
        p = sign_test_p(gains, informative) if informative else 1.0
    else:
        test = "Wilcoxon signed-rank test"
        informative = int((d != 0).sum())
        p = signed_rank_p(d) if informative else 1.0
    low, high = t_interval(d, confidence)
    if kind == "bool":
        low, high = max(low, -1.0), min(high, 1.0)
    out.update(
        informative=informative, mean_a=float(x.mean()), mean_b=float(y.mean()),
        diff=float(d.mean()), ci_low=low, ci_high=high, test=test, p_value=float(p),
    )  # fmt: skip
    return out


# ---------------------------------------------------------------------------- wording


def _listed(values: Sequence[Hashable]) -> str:
    return ", ".join(map(str, values)) if values else "(absent)"
