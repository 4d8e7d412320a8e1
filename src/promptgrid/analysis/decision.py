"""The decision: what a table's scores say about each factor that varies, computed once.

:func:`decide` is a pure function from a result table to a :class:`Decision` — no I/O, no
clock — which every view renders (the terminal, the XLSX summary sheet, the HTML report), so
the views cannot disagree. For each *factor* that varies and each *score* (judges' included;
a pass/fail score as a pass rate, a numeric one as a mean):

- **levels** (one row per factor, level and score): the pass rate or mean with its interval
  (Wilson's; Student's t over cell means), the cells and samples behind it, whether it is the
  best level, and for a cost-versus-quality view the mean cost per call and whether the level
  is on the Pareto front (no other level scores at least as well for no more money);
- **pairs** (one row per factor, score and level other than the best): each level against the
  best one, on paired cells — the difference with its interval, the paired test's p-value,
  Holm-adjusted over the comparisons, and the verdict in words ("B beats A: +12 points,
  p = 0.003", "too few pairs to tell: ...", "no detectable difference ..."). These rows are
  :func:`promptgrid.contrast` with ``against="best"``: the same numbers, the same words;
- **heatmap**: the first score's mean over the first two factors.

A factor whose cells cannot be paired (see :mod:`promptgrid.analysis.pairing`) has no levels
and no pairs; ``refused`` says why. Levels keep the table's order. Every table is tidy and
plain, and :meth:`Decision.to_dict` is JSON-ready (missing numbers as ``None``).

Factors, by default: ``run_id``, ``prompt`` and every parameter that varies, and each other
input that is an axis of the grid — a var: crossed with every other such input (case columns
are not: the columns of a dataset go together, one value of each per case) and with at most
``MAX_VAR_LEVELS`` values. Pass ``factors=`` to choose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..columns import is_input
from ..errors import UsageError
from ..money import usd
from ..spec.schema import ParamValues
from .answers import score_columns
from .contrast import Contrast, contrast_paired, score_column, score_values
from .pairing import codes, combine, pair, values

__all__ = ["Decision", "Heatmap", "decide", "default_factors"]

#: A var with more values than this is taken for data, not for a factor (pass ``factors=``).
MAX_VAR_LEVELS = 10
_ALWAYS = frozenset({"run_id", "prompt", *ParamValues.model_fields})

LEVEL_COLUMNS = [
    "factor", "level", "score", "kind", "cells", "samples", "mean", "ci_low", "ci_high",
    "best", "calls", "cost_per_call", "pareto",
]  # fmt: skip
PAIR_COLUMNS = [
    "factor", "score", "a", "b", "pairs", "informative", "mean_a", "mean_b", "diff", "ci_low",
    "ci_high", "test", "p_value", "p_adjusted", "outcome", "winner", "verdict", "changed",
]  # fmt: skip


@dataclass(frozen=True)
class Heatmap:
    """``score``'s mean (a pass rate) and samples for each level of ``x`` (rows) by each
    level of ``y`` (columns); ``None`` where a combination has no scored sample."""

    score: str
    x: str
    y: str
    x_levels: list[Any]
    y_levels: list[Any]
    mean: list[list[float | None]]
    samples: list[list[int]]


@dataclass(frozen=True, repr=False)
class Decision:
    """What :func:`decide` found (see the module docstring for each part).

    ``levels`` has the columns ``LEVEL_COLUMNS``: factor, level, score, kind (``bool`` or
    ``numeric``), cells, samples, mean, ci_low, ci_high, best (bool), calls (requests),
    cost_per_call (USD; NaN when no call's price is known), pareto (bool; NaN without a cost).
    ``pairs`` has ``PAIR_COLUMNS``: factor, score, a (the best level), b, pairs, informative
    (pairs that differ), mean_a, mean_b, diff (b - a), ci_low, ci_high, test, p_value,
    p_adjusted, outcome (``better``, ``no_difference``, ``too_few``, ``no_pairs``), winner
    (a level, or None), verdict (words), changed (inputs left out of the pairing because they
    changed with the factor: name -> [values under a, values under b]).
    """

    confidence: float
    factors: tuple[str, ...]
    scores: tuple[str, ...]
    levels: pd.DataFrame
    pairs: pd.DataFrame
    #: factor -> the inputs its cells were paired on (those that vary).
    paired_on: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: factor -> why its cells could not be paired (it then has no levels and no pairs).
    refused: dict[str, str] = field(default_factory=dict)
    heatmap: Heatmap | None = None

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        return self.report()

    def verdicts(self) -> list[str]:
        """One line per comparison: ``score_correct by prompt: B beats A: +12 points, ...``;
        then one per factor that could not be paired."""
        lines = [f"{p.score} by {p.factor}: {p.verdict}" for p in self.pairs.itertuples()]
        return lines + [f"{factor}: {why}" for factor, why in self.refused.items()]

    def report(self) -> str:
        """Each factor and score: its levels (mean, interval, cost per call; ``*`` marks the
        best, ``front`` the Pareto front) and its verdicts. What the terminal prints."""
        if not self.factors or not self.scores:
            return "nothing to decide: " + (
                "no scores in the table" if not self.scores else "no factor varies"
            )
        blocks = []
        for (factor, score), levels in self.levels.groupby(["factor", "score"], sort=False):
            blocks.append("\n".join(self._block(str(factor), str(score), levels)))
        blocks += [f"{factor}: {why}" for factor, why in self.refused.items()]
        return "\n\n".join(blocks)

    def _block(self, factor: str, score: str, levels: pd.DataFrame) -> list[str]:
        kind = levels["kind"].iloc[0]
        on = ", ".join(self.paired_on.get(factor, ())) or "nothing (one cell a level)"
        what = "pass rate" if kind == "bool" else "mean"
        pct = f"{self.confidence:.0%} CI"
        width = max([len(str(v)) for v in levels["level"]] + [len(factor)])
        lines = [
            f"{score} by {factor}" + ("" if factor in self.refused else f" (paired on {on})"),
            f"    {factor:<{width}}  {'cells':>5}  {what:>9}  {pct:>17}  {'cost/call':>10}",
        ]
        for row in levels.itertuples():
            mark = "*" if row.best else " "
            ci = f"[{_num(row.ci_low)}, {_num(row.ci_high)}]"
            front = "  front" if row.pareto is True else ""
            lines.append(
                f"  {mark} {row.level!s:<{width}}  {row.cells:>5}  {_num(row.mean):>9}  "
                f"{ci:>17}  {_money(row.cost_per_call):>10}{front}"
            )
        mine = self.pairs[(self.pairs["factor"] == factor) & (self.pairs["score"] == score)]
        lines += [f"  {verdict}" for verdict in mine["verdict"]]
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The decision as plain JSON values (NaN as None): what a view ships."""
        heatmap = None
        if self.heatmap is not None:
            heatmap = {k: _json(v) for k, v in self.heatmap.__dict__.items()}
        return {
            "confidence": self.confidence,
            "factors": list(self.factors),
            "scores": list(self.scores),
            "levels": _records(self.levels),
            "pairs": _records(self.pairs),
            "paired_on": {k: list(v) for k, v in self.paired_on.items()},
            "refused": dict(self.refused),
            "heatmap": heatmap,
        }


def decide(
    df: pd.DataFrame,
    *,
    factors: Sequence[str] | None = None,
    scores: Sequence[str] | None = None,
    on: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> Decision:
    """The decision a table supports: for each factor that varies and each score, the levels
    with their intervals, cost per call and Pareto front, and each level against the best
    with a p-value and a verdict in words (see the module docstring).

    Args:
        df: a result table (one run, runs concatenated, a subset, a CSV read back).
        factors: the inputs to decide on (default: run_id, prompt and the parameters that
            vary, and the vars that are axes of the grid: :func:`default_factors`).
        scores: by name or column (default: every score column of the table).
        on: the inputs that pair cells, for a table of your own (each factor pairs on the
            others); default: every input, told by name.
        confidence: of the intervals; the verdicts test at ``1 - confidence``.

    Example::

        decision = promptgrid.decide(df)
        print(decision)                    # per factor and score: levels, then verdicts
        decision.pairs                     # tidy tables; decision.to_dict() for JSON
    """
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be between 0 and 1, not {confidence}")
    for name in factors or ():
        if name not in df.columns:
            raise UsageError(f"no column {name!r} in the table to decide on")
    coded = {
        c: codes(df[c])[0] for c in map(str, df.columns) if is_input(c) or c in (factors or ())
    }
    chosen = list(_default_factors(df, coded) if factors is None else factors)
    columns = [score_column(df, s) for s in scores] if scores is not None else score_columns(df)
    for column in columns:
        score_values(df[column])  # a column that is not a score is refused here, once
    level_rows: list[pd.DataFrame] = []
    pair_rows: list[pd.DataFrame] = []
    paired_on: dict[str, tuple[str, ...]] = {}
    refused: dict[str, str] = {}
    for factor in chosen:
        found, why = _factor(df, factor, columns, on, confidence, coded)
        if why:
            refused[factor] = why
        if found:
            paired_on[factor] = found[0].paired_on
        cost = _cost(df, factor)
        for result in found:
            level_rows.append(_level_table(result, cost))
            pair_rows.append(result.pairs.assign(factor=factor, score=result.score))
    return Decision(
        confidence=confidence,
        factors=tuple(chosen),
        scores=tuple(columns),
        levels=_concat(level_rows, LEVEL_COLUMNS),
        pairs=_concat(pair_rows, PAIR_COLUMNS),
        paired_on=paired_on,
        refused=refused,
        heatmap=_heatmap(df, chosen, columns),
    )


def default_factors(df: pd.DataFrame) -> list[str]:
    """The inputs :func:`decide` decides on by default, in table order (module docstring)."""
    return _default_factors(df, {c: codes(df[c])[0] for c in map(str, df.columns) if is_input(c)})


def _default_factors(df: pd.DataFrame, coded: dict[str, np.ndarray]) -> list[str]:
    varying = {c: found for c, found in coded.items() if is_input(c) and found.max(initial=0) > 0}
    others = [c for c in varying if c not in _ALWAYS]

    def axis(name: str) -> bool:
        n = int(varying[name].max()) + 1
        return n <= MAX_VAR_LEVELS and all(
            int(combine([varying[name], varying[o]], len(df)).max()) + 1
            == n * (int(varying[o].max()) + 1)
            for o in others
            if o != name
        )

    return [c for c in varying if c in _ALWAYS or axis(c)]


# ---------------------------------------------------------------------------- helpers


def _factor(
    df: pd.DataFrame,
    factor: str,
    columns: list[str],
    on: Sequence[str] | None,
    confidence: float,
    coded: dict[str, np.ndarray],
) -> tuple[list[Contrast], str]:
    """Each score's contrast of ``factor`` against its best level; or, when its cells
    cannot be paired, the levels alone and why."""
    keys = None if on is None else [c for c in on if c != factor]
    try:
        pairing = pair(df, factor, keys, columns, coded)
        return [contrast_paired(pairing, df, c, "best", confidence) for c in columns], ""
    except UsageError as exc:
        return [], str(exc)


def _level_table(result: Contrast, cost: pd.DataFrame) -> pd.DataFrame:
    levels = result.levels
    out = pd.DataFrame(
        {
            "level": list(levels.index),
            "score": result.score,
            "kind": result.kind,
            "cells": levels["cells"].to_numpy(),
            "samples": levels["samples"].to_numpy(),
            "mean": levels["mean"].to_numpy(float),
            "ci_low": levels["ci_low"].to_numpy(float),
            "ci_high": levels["ci_high"].to_numpy(float),
        }
    )
    best = result.pairs["a"].iloc[0] if len(result.pairs) else levels.index[0]
    out["best"] = [level == best for level in out["level"]]
    out["calls"] = cost["calls"].to_numpy()
    out["cost_per_call"] = cost["cost_per_call"].to_numpy(float)
    out["pareto"] = _pareto(out["mean"].to_numpy(float), out["cost_per_call"].to_numpy(float))
    return out.assign(factor=result.factor)


def _cost(df: pd.DataFrame, factor: str) -> pd.DataFrame:
    """Per level (table order): requests, and the mean cost of those sent (cached answers
    cost nothing, and say nothing of a variant's price) whose cost is known."""
    level, _ = codes(df[factor])
    first = df["choice"].fillna(0).to_numpy() == 0 if "choice" in df.columns else True
    request = np.ones(len(df), bool) & first
    sent = request.copy()
    if "cached" in df.columns:
        sent &= ~df["cached"].fillna(False).to_numpy(bool)
    price = pd.to_numeric(df["cost_usd"], errors="coerce").to_numpy(float) if (
        "cost_usd" in df.columns) else np.full(len(df), np.nan)  # fmt: skip
    known = sent & ~np.isnan(price)
    size = int(level.max()) + 1 if len(level) else 0
    calls = np.bincount(level[request], minlength=size)
    count = np.bincount(level[known], minlength=size)
    total = np.bincount(level[known], price[known], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_call = np.where(count > 0, total / count, np.nan)
    return pd.DataFrame({"calls": calls, "cost_per_call": per_call})


def _pareto(mean: np.ndarray, cost: np.ndarray) -> list[bool | float]:
    """Per level: on the front (no other level scores at least as well for no more money,
    and better or cheaper), or NaN when its mean or cost is unknown."""
    known = ~np.isnan(mean) & ~np.isnan(cost)
    out: list[bool | float] = []
    for i in range(len(mean)):
        if not known[i]:
            out.append(np.nan)
            continue
        others = known & (mean >= mean[i]) & (cost <= cost[i])
        others &= (mean > mean[i]) | (cost < cost[i])
        out.append(not others.any())
    return out


def _heatmap(df: pd.DataFrame, factors: list[str], columns: list[str]) -> Heatmap | None:
    """The first score over the first two factors."""
    if len(factors) < 2 or not columns:
        return None
    x, y = factors[:2]
    _, scored_values = score_values(df[columns[0]])
    numbers = scored_values.to_numpy(float)
    (xc, _), (yc, _) = codes(df[x]), codes(df[y])
    x_levels, y_levels = values(df[x]), values(df[y])
    scored = ~np.isnan(numbers)
    cell = xc[scored] * len(y_levels) + yc[scored]
    size = len(x_levels) * len(y_levels)
    samples = np.bincount(cell, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(cell, numbers[scored], size) / samples
    shape = (len(x_levels), len(y_levels))
    return Heatmap(
        score=columns[0],
        x=x,
        y=y,
        x_levels=[_json(v) for v in x_levels],
        y_levels=[_json(v) for v in y_levels],
        mean=_json(mean.reshape(shape).tolist()),
        samples=[[int(v) for v in row] for row in samples.reshape(shape)],
    )


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat([f[columns] for f in frames], ignore_index=True)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _json(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _json(value: Any) -> Any:
    """A value as plain JSON: numpy scalars as Python's, NaN and NA as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if not isinstance(value, (str, bool, int, float)) and pd.isna(value):
        return None
    return value


def _money(value: Any) -> str:
    return "-" if value is None else usd(float(value))


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}"
