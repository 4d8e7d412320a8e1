"""The ``compare`` and ``summary`` sheets, built from the run's DataFrame (they aggregate).

``compare`` is :func:`promptgrid.compare` as a sheet: one row per input combination (the vars
and case columns that vary), one column per prompt × varying params, the answers in the cells
(with the tools they called), each followed by its scores in colour (``✓ correct`` green,
``✗ concise`` red, ``quality 4``). Repeats are stacked in one cell with a ``───`` line between
them, or given a column each (``repeats="columns"``). A cell whose calls all failed shows the
error and is red; one where only some failed is amber, its errors shown as ``[error_type]
message`` between the answers.

``summary`` opens on the verdict (:mod:`.verdict`: :func:`promptgrid.decide`'s verdicts,
levels and comparisons), then :func:`promptgrid.summary` in blocks: by prompt and varying
params together, then by each of them alone, then all calls. Each part is a titled block, so
another may follow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ...analysis.answers import Mark, answer_texts, score_columns, score_marks
from ...analysis.comparison import SEPARATOR, compare, grid_axes, summary
from .cells import MAX_CELL, Styles, cell_text, cell_value
from .results import _fit, _lines
from .sheet import Cell, Rich, Sheet
from .verdict import LABEL_COLUMNS, NUMBER_WIDTH, write_verdict

if TYPE_CHECKING:
    from ..choices import Repeats

#: A compare row shows at most this many lines (Excel's tallest row is 409 points).
MAX_LINES = 25
_NAMELESS = ("prompt", "run_id")  # header cells show just the value of these levels


def write_compare(
    sheet: Sheet, df: pd.DataFrame, styles: Styles, *, repeats: Repeats = "stack"
) -> None:
    """Fill ``sheet`` with the side-by-side table of ``df``."""
    if df.empty:
        sheet.append([("No results yet.", styles.get("text"))])
        return
    rows, cols = grid_axes(df)
    if repeats == "columns" and "repeat" in df.columns and df["repeat"].nunique() > 1:
        cols = [*cols, "repeat"]
    answers = compare(df, rows, cols)
    marked = _marked(df, rows, cols, styles)
    work = df.assign(__failed__=(df["status"] != "ok").astype(float))
    failed = compare(work, rows, cols, values="__failed__", aggfunc="mean")
    row_labels = _labels(answers.index)
    col_labels = _labels(answers.columns)
    row_names = [cell_value(str(n)) if n is not None else "" for n in answers.index.names]
    col_names = [str(n) if n is not None else "" for n in answers.columns.names]
    n_labels, levels = len(row_names), len(col_names)

    texts = answers.to_numpy(dtype=object)
    states = failed.to_numpy(dtype=float)
    label_widths = [_fit(name, [r[i] for r in row_labels], 30) for i, name in enumerate(row_names)]
    answer_widths = [_fit("", [_cell_text(v) for v in texts[:, j]], 50) + 2
                     for j in range(texts.shape[1])]  # fmt: skip
    widths = [*label_widths, *(max(w, 16.0) for w in answer_widths)]
    sheet.set_widths(widths)
    sheet.fit_to_width()
    sheet.freeze(levels, n_labels)
    sheet.print_titles(levels)

    header, input_header = styles.get("header"), styles.get("input_header")
    for level in range(levels):
        cells: list[Cell] = [
            (row_names[i] if level == levels - 1 else "", input_header) for i in range(n_labels)
        ]
        for label in col_labels:
            name, value = col_names[level], label[level]
            text = value if name in _NAMELESS or not name else f"{name} = {value}"
            cells.append((cell_value(text), header))
        sheet.append(cells, 30.0 if level == levels - 1 else None)
        if level < levels - 1:
            _merge_runs(sheet, cells, col_labels, level, n_labels)

    wrap, label_style = styles.get("wrap"), styles.get("label")
    by_state = {
        "ok": wrap,
        "error": styles.get("wrap", "error"),
        "mixed": styles.get("wrap", "mixed"),
    }
    for r, labels in enumerate(row_labels):
        cells = [(cell_value(_label(v)), label_style) for v in labels]
        lines = max((_lines(v, label_widths[i]) for i, v in enumerate(labels)), default=1)
        for j in range(len(col_labels)):
            rich = marked[r, j] if marked is not None else None
            text = rich.text if isinstance(rich, Rich) else _cell_text(texts[r, j])
            cells.append((rich or cell_value(text), by_state[_state(states[r, j])]))
            lines = max(lines, _lines(text, widths[n_labels + j]))
        sheet.append(cells, sheet.lines_height(min(lines, MAX_LINES)))
    sheet.filter(levels - 1, levels - 1 + len(row_labels), len(widths))


def write_summary(sheet: Sheet, df: pd.DataFrame, styles: Styles) -> None:
    """Fill ``sheet`` with calls, errors, latency, tokens and cost, in blocks."""
    if df.empty:
        sheet.append([("No results yet.", styles.get("text"))])
        return
    _, cols = grid_axes(df)
    keys = [c for c in cols if c != "repeat"] or ["prompt"]
    width = max(len(keys), LABEL_COLUMNS)
    metrics = _metrics(df)
    sheet.set_widths([*([22.0] * width), *([NUMBER_WIDTH] * max(len(metrics), 10))])
    sheet.fit_to_width()
    write_verdict(sheet, df, styles, width)
    blocks: list[tuple[str, list[str]]] = [(f"By {' × '.join(keys)}", keys)]
    if len(keys) > 1:
        blocks += [(f"By {key}", [key]) for key in keys]
    blocks.append(("All calls", []))
    title, header, label = styles.get("title"), styles.get("header"), styles.get("label")
    for name, by in blocks:
        table = summary(df, by=by)
        sheet.append([(name, title)], 22.0)
        heads = [*(by or ["group"]), *([""] * (width - max(len(by), 1)))]
        heads = [cell_value(h) for h in heads]  # var, param and case column names
        sheet.append([*((h, header) for h in heads), *((h, header) for _, h, _ in metrics)], 30.0)
        for index, row in table.iterrows():
            labels = list(index) if isinstance(index, tuple) else [index if by else "all calls"]
            labels += [""] * (width - len(labels))
            bad = bool(row["errors"])
            cells = [(cell_value(_label(v)), label) for v in labels]
            for column, _, kind in metrics:
                state = "error" if bad and column in ("errors", "error_rate") else "ok"
                cells.append((cell_value(_plain(row[column])), styles.get(kind, state)))
            sheet.append(cells)
        sheet.append([])


def _metrics(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(column of summary(), header, style kind) of the summary blocks."""
    metrics = [("calls", "calls", "int"), ("errors", "errors", "int"),
               ("error_rate", "error rate", "percent"), ("cached", "cached", "int"),
               ("latency_s", "mean latency", "latency"),
               ("prompt_tokens", "prompt tokens", "tokens"),
               ("completion_tokens", "completion tokens", "tokens"),
               ("cost_usd", "cost", "cost")]  # fmt: skip
    # Pass/fail scores: their pass rate and its 95 % Wilson interval (from summary()).
    for column in (c for c in df.columns if c.startswith("score_") and c != "score_errors"):
        if str(df[column].dtype) == "boolean":
            name = column.removeprefix("score_")
            metrics += [(column, f"{name} pass rate", "percent"),
                        (f"{column}_low", "95% CI low", "percent"),
                        (f"{column}_high", "95% CI high", "percent")]  # fmt: skip
    return metrics


def _marked(df: pd.DataFrame, rows: list[str], cols: list[str], styles: Styles) -> Any:
    """The compare cells as rich text, each answer followed by its scores' marks in colour
    (``None`` without scores): an array shaped as ``compare(df, rows, cols)``."""
    columns = score_columns(df)
    if not columns:
        return None
    pairs = list(zip(answer_texts(df).tolist(), score_marks(df, columns), strict=True))
    work = df[[*rows, *cols]].assign(__cell__=pairs)
    cells = compare(work, rows, cols, values="__cell__", aggfunc=list).to_numpy(dtype=object)
    fonts = {state: styles.get("mark", state) for state in ("pass", "fail", "value", "none")}
    out = cells.copy()
    for r in range(cells.shape[0]):
        for j in range(cells.shape[1]):
            items = cells[r, j]
            out[r, j] = _rich(items if isinstance(items, list) else [], fonts)
    return out


def _rich(items: list[tuple[Any, tuple[Mark, ...]]], fonts: dict[str, Any]) -> Rich | None:
    """Answers stacked with ``───`` between them, each with a line of its marks."""
    if not items:
        return None
    parts: list[tuple[str, Any]] = []
    for n, (text, marks) in enumerate(items):
        if n:
            parts.append((SEPARATOR, None))
        parts.append((cell_text(_cell_text(text)), None))
        for k, mark in enumerate(marks):
            parts.append(("\n" if k == 0 else "  ", None))
            parts.append((cell_text(mark.text), fonts[mark.state]))
    rich = Rich(tuple(parts))
    if len(rich.text) > MAX_CELL // 2:  # too long for parts: the text, cut as every cell is
        return Rich(((cell_text(rich.text), None),))
    return rich


def _labels(index: pd.Index) -> list[tuple[Any, ...]]:
    """Each label of an index as a tuple of plain values."""
    return [
        tuple(_plain(v) for v in (label if isinstance(label, tuple) else (label,)))
        for label in index
    ]


def _plain(value: Any) -> Any:
    """numpy and pandas scalars as Python values; missing as None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _label(value: Any) -> Any:
    """A row label as text (``0.0`` shows as 0.0, not 0)."""
    value = _plain(value)
    return None if value is None else str(value)


def _cell_text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _state(failed: float) -> str:
    if math.isnan(failed) or failed == 0:
        return "ok"
    return "error" if failed >= 1 else "mixed"


def _merge_runs(
    sheet: Sheet,
    cells: Sequence[Cell],
    labels: Sequence[tuple[Any, ...]],
    level: int,
    offset: int,
) -> None:
    """Merge the header cells of ``level`` (the row just appended, ``cells``) where
    neighbours share every label up to it."""
    start = 0
    for j in range(1, len(labels) + 1):
        if j < len(labels) and labels[j][: level + 1] == labels[start][: level + 1]:
            continue
        if j - start > 1:
            sheet.merge(offset + start, offset + j - 1, cells[offset + start])
        start = j
