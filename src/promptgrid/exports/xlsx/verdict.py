"""The summary sheet's first block: the verdict, as :func:`promptgrid.decide` finds it.

The same decision the terminal prints (``promptgrid show``, ``promptgrid contrast``) and the
HTML report draws, from the same table: its verdicts in words, one a row; then each factor's
levels (pass rate or mean, its interval, cells, cost per call, the best level, the Pareto
front); then each level against the best one (pairs, how many differ, the difference with its
interval, the p-value and Holm's). A table decide() cannot read says why instead.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ...analysis.decision import decide
from ...analysis.statistics import p_text
from ...errors import UsageError
from .cells import Styles, cell_value
from .sheet import Sheet

__all__ = ["LABEL_COLUMNS", "NUMBER_WIDTH", "write_verdict"]

#: The verdict's tables put the score and factor, then the level, in label columns.
LABEL_COLUMNS = 2
#: Width of the summary sheet's number columns.
NUMBER_WIDTH = 13.0

_LEVELS = (("cells", "cells", "int"), ("samples", "samples", "int"), ("mean", "", ""),
           ("ci_low", "CI low", ""), ("ci_high", "CI high", ""),
           ("cost_per_call", "cost per call", "cost"), ("best", "best", "text"),
           ("pareto", "Pareto front", "text"))  # fmt: skip
_PAIRS = (("pairs", "pairs", "int"), ("informative", "pairs that differ", "int"),
          ("diff", "difference", ""), ("ci_low", "CI low", ""), ("ci_high", "CI high", ""),
          ("p_value", "p", "text"), ("p_adjusted", "p (Holm)", "text"),
          ("outcome", "outcome", "text"))  # fmt: skip


def write_verdict(sheet: Sheet, df: pd.DataFrame, styles: Styles, labels: int) -> None:
    """Append the verdict block to ``sheet`` (``labels`` label columns before the numbers)."""
    title, text = styles.get("title"), styles.get("wrap")
    sheet.append([("Verdict", title)], 22.0)
    try:
        decision = decide(df)
    except UsageError as exc:
        sheet.append([(cell_value(f"no verdict: {exc}"), text)])
        sheet.append([])
        return
    lines = decision.verdicts() or [decision.report()]  # "nothing to decide: ..."
    width = labels + len(_LEVELS)
    for line in lines:
        sheet.append([(cell_value(line), text)], sheet.lines_height(1 + len(line) // 150))
        sheet.merge(0, width - 1, (cell_value(line), text))
    sheet.append([])
    if len(decision.levels):
        _levels(sheet, decision.levels, styles, labels)
    if len(decision.pairs):
        kinds = {(r.factor, r.score): r.kind for r in decision.levels.itertuples()}
        _pairs(sheet, decision.pairs, kinds, styles, labels)


def _levels(sheet: Sheet, levels: pd.DataFrame, styles: Styles, labels: int) -> None:
    sheet.append([("Levels (pass rate or mean, 95% interval)", styles.get("title"))], 22.0)
    _header(sheet, ["score by factor", "level"], [h or "pass rate / mean" for _, h, _ in _LEVELS],
            styles, labels)  # fmt: skip
    for row in levels.to_dict("records"):
        kind = "percent" if row["kind"] == "bool" else "float"
        cells = _label_cells(row, str(row["level"]), styles, labels)
        for column, _, style in _LEVELS:
            value = row[column]
            if column in ("best", "pareto"):
                value = {True: "yes", False: ""}.get(value, "")
            state = "pass" if column == "best" and row["best"] else "ok"
            cells.append((cell_value(_plain(value)), styles.get(style or kind, state)))
        sheet.append(cells)
    sheet.append([])


def _pairs(
    sheet: Sheet,
    pairs: pd.DataFrame,
    kinds: dict[Any, Any],
    styles: Styles,
    labels: int,
) -> None:
    sheet.append([("Each level against the best (paired)", styles.get("title"))], 22.0)
    _header(sheet, ["score by factor", "level vs the best"], [h for _, h, _ in _PAIRS], styles,
            labels)  # fmt: skip
    for row in pairs.to_dict("records"):
        kind = "percent" if kinds.get((row["factor"], row["score"])) == "bool" else "float"
        cells = _label_cells(row, f"{row['b']} vs {row['a']}", styles, labels)
        for column, _, style in _PAIRS:
            value = _plain(row[column])
            if column in ("p_value", "p_adjusted") and value is not None:
                value = p_text(value)
            state = "pass" if column == "outcome" and value == "better" else "ok"
            cells.append((cell_value(value), styles.get(style or kind, state)))
        sheet.append(cells)
    sheet.append([])


def _header(sheet: Sheet, names: list[str], heads: list[str], styles: Styles, labels: int) -> None:
    header = styles.get("header")
    names = names + [""] * (labels - len(names))
    sheet.append([*((n, header) for n in names), *((h, header) for h in heads)], 30.0)


def _label_cells(row: dict[Any, Any], level: str, styles: Styles, labels: int) -> list[Any]:
    label = styles.get("label")
    score = str(row["score"]).removeprefix("score_")
    factor = "run" if row["factor"] == "run_id" else str(row["factor"])
    names = [f"{score} by {factor}", level] + [""] * (labels - 2)
    return [(cell_value(n), label) for n in names]


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, (str, bool, dict)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
