"""Reading a result table: side by side (``compare``), only what varies (``varying``), and
calls, errors, latency, tokens and cost per group (``summary``).

All three take the DataFrame ``run``/``arun``/``load`` return (or several concatenated). They
tell the grid's inputs from the results by name (:func:`promptgrid.columns.is_input`: not a
result column, a score or the judges' usage), and in a table that has a ``repeat`` column only
among the columns before it: columns you add after the results (labels, lengths) are never
taken for inputs. Parameters are told from vars by name (``model``, ``temperature``, ...: the
chat-completion parameters the experiment file accepts). An answer shows as every answer view
shows it (:func:`promptgrid.analysis.answers.answer_texts`: its error, or its text with the
tools it called).

``compare`` and ``varying`` return a :class:`WrappedFrame`: a DataFrame in every respect, which a
notebook shows with long text wrapped and whole (not cut at ``display.max_colwidth``) and with
its line breaks kept.
"""

from __future__ import annotations

import html
import importlib.metadata
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..columns import is_input
from ..errors import UsageError
from ..spec.schema import ParamValues
from .answers import answer_texts, score_columns
from .statistics import wilson_interval

__all__ = ["WrappedFrame", "compare", "grid_axes", "input_columns", "summary", "varying"]

#: Where several values fall into one cell of ``compare`` (repeats, axes left out), text values
#: are joined with this line between them.
SEPARATOR = "\n───\n"
_TEXT_STYLE = "white-space:pre-wrap;text-align:left;min-width:12em;max-width:40em"
_LABEL_STYLE = "white-space:pre-wrap;text-align:left;max-width:40em"
_TABLE_STYLES = [
    {"selector": "th", "props": "text-align:left;vertical-align:top"},
    {"selector": "td", "props": "vertical-align:top"},
]
#: What pandas' Styler needs here: pandas 3.1 refuses an older jinja2 (pyproject's floor too).
STYLER_NEEDS = "jinja2>=3.1.6"
_styler_warned = False  # the plain-table warning is given once per process
_PARAMS = frozenset(ParamValues.model_fields)

Agg = str | Callable[[pd.Series], Any]


class WrappedFrame(pd.DataFrame):
    """A DataFrame that a notebook shows with wrapped, untruncated text (``white-space:
    pre-wrap``: line breaks kept, at most 40em wide per cell), left-aligned and top-aligned.

    Everything else is plain pandas: slicing, sorting or ``head()`` keep the wrapping; exports
    and arithmetic behave as for any DataFrame. A table longer than ``display.max_rows`` shows
    its first ``display.min_rows`` rows, one wider than ``display.max_columns`` its first
    columns, with a note saying so.
    """

    @property
    def _constructor(self) -> Callable[..., WrappedFrame]:
        return WrappedFrame

    def _repr_html_(self) -> str | None:
        if not pd.get_option("display.notebook_repr_html"):
            return None
        rows, columns = self.shape
        max_rows = pd.get_option("display.max_rows")
        max_columns = pd.get_option("display.max_columns")
        view = pd.DataFrame(self)
        shown = []
        if max_rows and rows > max_rows:
            view = view.iloc[: pd.get_option("display.min_rows") or max_rows]
            shown.append(f"the first {len(view):,} of {rows:,} rows")
        if max_columns and columns > max_columns:
            view = view.iloc[:, :max_columns]
            shown.append(f"the first {max_columns:,} of {columns:,} columns")
        note = f"<p>showing {' and '.join(shown)}</p>" if shown else ""
        try:
            style = view.style
        except (ImportError, AttributeError) as exc:  # jinja2 missing, or too old for pandas
            global _styler_warned
            if not _styler_warned:
                _styler_warned = True
                warnings.warn(_plain_tables_because(exc), stacklevel=2)
            return self._plain_html()
        try:
            styler = (
                style.format(_html, na_rep="")
                .format_index(_label, axis=0)
                .format_index(_label, axis=1)
                .set_table_styles(list(_TABLE_STYLES))
            )
            html_text: str = styler.to_html()
            return html_text + note
        except (KeyError, ValueError):  # a Styler limit (non-unique labels, ...): plain pandas
            return self._plain_html()

    def _plain_html(self) -> str | None:
        plain: str | None = super()._repr_html_()  # type: ignore[misc]  # not in pandas-stubs
        return plain


def _plain_tables_because(exc: BaseException) -> str:
    """Why notebook tables are plain, naming what to install (a silent fallback hides it)."""
    try:
        installed = f"jinja2 {importlib.metadata.version('jinja2')} is installed"
    except importlib.metadata.PackageNotFoundError:
        installed = "jinja2 is not installed"
    return (
        f"promptgrid: notebook tables need {STYLER_NEEDS} for wrapped text ({installed}; "
        f"pandas: {exc}); showing pandas' plain table"
    )


def compare(
    df: pd.DataFrame,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    values: str = "response",
    *,
    aggfunc: Agg | None = None,
) -> WrappedFrame:
    """The side-by-side table: one row per combination of ``rows``, one column per combination
    of ``cols``, ``values`` in the cells. Rows and columns keep the grid's order.

    Defaults: ``cols`` are the prompt and the parameters that vary (and ``run_id`` when the table
    holds several runs); ``rows`` are the vars and case columns that vary (with no vars, the
    first of those columns goes down the side). Give one of them and the other takes every other
    input that varies.

    Several values in one cell: an input that varies but is in neither ``rows`` nor ``cols`` —
    ``repeat``, unless you name it — puts several rows into one cell. Text is then joined in grid
    order with a ``───`` line between the values (so every answer stays visible); numbers are
    averaged. ``aggfunc`` replaces that with any one-value aggregation pandas' ``agg`` accepts
    (``"first"``, ``"max"``, a function). With ``values="response"``, a failed call shows as
    ``[error_type] error`` rather than as an empty cell, and an answer with the tools it
    called (``→ get_weather(city="Paris")``), a refusal or a parse error.

    Examples, on the animal-names experiment (3 animals, 2 prompts, 2 temperatures)::

        promptgrid.compare(df)
        # prompt                     plain                        terse
        # temperature      0.0             1.0           0.0            1.0
        # animal
        # dog          echo: Please...  echo: Please...  echo: List...  echo: List...
        # cat          ...

        promptgrid.compare(df, rows=["animal", "temperature"], cols=["prompt"])
        promptgrid.compare(df, values="completion_tokens")   # numbers: the mean per cell
        promptgrid.compare(df, cols=["prompt", "repeat"])    # each repeat in its own column
    """
    _require(df, [values, *(rows or ()), *(cols or ())])
    rows, cols = grid_axes(df, rows, cols)
    overlap = sorted(set(rows) & set(cols))
    if overlap:
        raise UsageError(f"{overlap} given both as rows and as cols")
    cell = _cell_values(df, values)
    text = _is_text(cell)
    func: Agg = aggfunc if aggfunc is not None else (_join if text else "mean")
    keys = [*rows, *cols]
    work = df[keys].copy()
    work["__value__"] = cell.to_numpy()
    if not keys:
        return WrappedFrame({values: [work["__value__"].agg(func)]})
    grouped = work.groupby(keys, sort=False, dropna=False)["__value__"].agg(func)
    if not cols:
        return WrappedFrame(grouped.to_frame(values))
    if not rows:
        table = grouped.to_frame(values).T
        return WrappedFrame(table)
    table = grouped.unstack(cols)
    row_order = _first_seen(df, rows)
    col_order = _first_seen(df, cols)
    return WrappedFrame(table.reindex(index=row_order, columns=col_order))


def varying(df: pd.DataFrame, also: Sequence[str] = ()) -> WrappedFrame:
    """Only the inputs that vary, then ``response`` (and ``error`` if a call failed), then the
    columns named in ``also``: the table to read, without the constant and bookkeeping columns.
    Rows stay as they are (one per cell of the grid, in grid order).

    Examples::

        promptgrid.varying(df)
        #    prompt animal  temperature                             response
        # 0   plain    dog          0.0  echo: Please give me five dog names
        # 1   plain    dog          1.0  echo: Please give me five dog names
        # ...

        promptgrid.varying(df, also=["latency_s", "completion_tokens"])
    """
    _require(df, ["response", *also])
    keep = [c for c in input_columns(df) if _varies(df[c])]
    keep.append("response")
    if "error" in df.columns and df["error"].notna().any():
        keep.append("error")
    keep += [c for c in also if c not in keep]
    return WrappedFrame(df[keep])


def summary(df: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Calls, errors, error rate, cached answers, mean latency, tokens and cost per group.

    ``by`` defaults to the prompt and the parameters that vary (and ``run_id`` when the table
    holds several runs); ``by=[]`` gives one row for the whole table. Columns:

    - ``calls``: requests (rows, but a request with several choices counts once);
      ``errors``: requests that failed; ``error_rate``: errors / calls;
    - ``cached``: requests answered from the store without a call;
    - ``latency_s``: mean seconds per call actually sent (cached rows left out; empty if none);
    - ``prompt_tokens``, ``completion_tokens``: totals over the rows that report usage;
    - ``cost_usd``: total of the table's ``cost_usd`` (cached rows cost nothing; empty when
      no row's price is known).

    With scores (columns ``score_<name>``), after those: for a pass/fail score its pass rate
    over the rows that have one (error rows have none) and, as ``<column>_low`` and
    ``<column>_high``, its Wilson confidence interval (95 %, scipy's); for a numeric score its
    mean. With judges, ``judge_tokens`` and ``judge_cost_usd``: what grading cost, apart from
    ``cost_usd``.

    Examples::

        promptgrid.summary(df)
        #                     calls  errors  error_rate  cached  latency_s  prompt_tokens ...
        # prompt temperature
        # plain  0.0              3       0         0.0       0   0.000013             63 ...
        # ...

        promptgrid.summary(df, by=["model"])
        promptgrid.summary(df, by=[])          # the whole table in one row
    """
    by = list(_default_cols(df) if by is None else by)
    _require(df, [*by, "status"])
    status = df["status"]
    cached = (
        df["cached"].fillna(False).astype(bool)
        if "cached" in df.columns
        else pd.Series(False, index=df.index)
    )
    # One request per cell: its other choices' rows (n > 1) repeat its latency and carry no
    # usage, so they are left out of the counts.
    first = df["choice"].fillna(0) == 0 if "choice" in df.columns else pd.Series(True, df.index)
    work = pd.DataFrame(
        {
            "calls": first.astype(int),
            "errors": ((status != "ok") & first).astype(int),
            "cached": (cached & first).astype(int),
            "latency_s": _numeric(df, "latency_s").where(~cached & first),
            "prompt_tokens": _numeric(df, "prompt_tokens"),
            "completion_tokens": _numeric(df, "completion_tokens"),
            "cost_usd": _numeric(df, "cost_usd"),
        },
        index=df.index,
    )
    if by:
        groups: Any = work.groupby([df[c] for c in by], sort=False, dropna=False)
    else:
        groups = work.groupby(pd.Series("all", index=df.index, name=""), sort=False)
    out = pd.DataFrame(
        {
            "calls": groups["calls"].sum(),
            "errors": groups["errors"].sum(),
            "error_rate": groups["errors"].sum() / groups["calls"].sum(),
            "cached": groups["cached"].sum(),
            "latency_s": groups["latency_s"].mean(),
            "prompt_tokens": groups["prompt_tokens"].sum(min_count=1),
            "completion_tokens": groups["completion_tokens"].sum(min_count=1),
            "cost_usd": groups["cost_usd"].sum(min_count=1),
        }
    )
    for column in ("prompt_tokens", "completion_tokens"):
        out[column] = out[column].astype("Int64")
    return _score_summary(df, out, by)


def _score_summary(df: pd.DataFrame, out: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``out`` with each score's pass rate (and Wilson interval) or mean, and judge usage."""
    scores = score_columns(df)
    judged = [c for c in ("judge_tokens", "judge_cost_usd") if c in df.columns]
    if not scores and not judged:
        return out
    keys: Any = [df[c] for c in by] if by else pd.Series("all", index=df.index, name="")
    for column in scores:
        values = df[column]
        binary = (
            pd.api.types.is_bool_dtype(values)
            or values.dropna().map(lambda v: isinstance(v, bool)).all()
        )
        numbers = _score_numbers(values)
        grouped = numbers.groupby(keys, sort=False, dropna=False)
        out[column] = grouped.mean()
        if binary:
            passed, counts = grouped.sum(), grouped.count()
            low, high = wilson_interval(passed.to_numpy(), counts.to_numpy(), 0.95)
            out[f"{column}_low"] = pd.Series(low, passed.index)
            out[f"{column}_high"] = pd.Series(high, passed.index)
    for column in judged:
        total = _numeric(df, column).groupby(keys, sort=False, dropna=False).sum(min_count=1)
        out[column] = total.astype("Int64") if column == "judge_tokens" else total
    return out


def _score_numbers(values: pd.Series) -> pd.Series:
    """A score column as floats (NaN: no score); a bool or number column at once."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return pd.Series(values.to_numpy(dtype=float, na_value=np.nan), index=values.index)
    return values.map(lambda v: np.nan if pd.isna(v) else float(v)).astype(float)


def input_columns(df: pd.DataFrame) -> list[str]:
    """The grid's inputs in table order: ``run_id``, ``prompt``, case columns, vars, params,
    ``repeat`` (those present): columns that are inputs by name and, when the table has a
    ``repeat`` column, stand before it."""
    columns = [str(c) for c in df.columns]
    end = columns.index("repeat") if "repeat" in columns else len(columns)
    inputs = [c for c in columns[:end] if is_input(c)]
    return inputs + (["repeat"] if "repeat" in columns else [])


# ---------------------------------------------------------------------------- helpers


def grid_axes(
    df: pd.DataFrame, rows: Sequence[str] | None = None, cols: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """The ``rows`` and ``cols`` :func:`compare` uses for these arguments (see its defaults)."""
    vary = [c for c in input_columns(df) if c != "repeat" and _varies(df[c])]
    if rows is None and cols is None:
        cols = _default_cols(df)
        rows = [c for c in vary if c not in cols]
        if not rows and len(cols) > 1:  # no vars: the first column axis goes down the side
            rows, cols = cols[:1], cols[1:]
        return rows, cols
    if cols is None:
        return list(rows or ()), [c for c in vary if c not in (rows or ())]
    if rows is None:
        return [c for c in vary if c not in cols], list(cols)
    return list(rows), list(cols)


def _default_cols(df: pd.DataFrame) -> list[str]:
    """``prompt``, and ``run_id`` and every parameter if they vary."""
    return [
        c for c in input_columns(df)
        if c == "prompt" or ((c == "run_id" or c in _PARAMS) and _varies(df[c]))
    ]  # fmt: skip


def _cell_values(df: pd.DataFrame, values: str) -> pd.Series:
    """The column to show; for ``response``, what every answer view shows of a call."""
    return answer_texts(df) if values == "response" else df[values]


def _join(values: pd.Series) -> str:
    return SEPARATOR.join("" if pd.isna(v) else str(v) for v in values)


def _first_seen(df: pd.DataFrame, columns: list[str]) -> pd.Index:
    seen = df[columns].drop_duplicates()
    if len(columns) == 1:
        return pd.Index(seen[columns[0]], name=columns[0])
    return pd.MultiIndex.from_frame(seen)


def _varies(column: pd.Series) -> bool:
    return bool(column.nunique(dropna=False) > 1)


def _is_text(column: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(column) or column.dtype == object


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        return pd.Series(float("nan"), index=df.index)
    return pd.to_numeric(df[column], errors="coerce").astype(float)


def _html(value: Any, style: str = _TEXT_STYLE) -> str:
    """One cell: text in a wrapping box, numbers much as pandas prints them."""
    if isinstance(value, str):
        return f'<div style="{style}">{html.escape(value)}</div>'
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".einf") else text + ".0"
    return html.escape(str(value))


def _label(value: Any) -> str:
    """A row or column label: wrapped like a cell, but only as wide as it needs."""
    return _html(value, _LABEL_STYLE)


def _require(df: pd.DataFrame, names: Sequence[Hashable]) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise UsageError(
            f"no column {', '.join(map(repr, missing))} in the table; "
            f"it has {', '.join(map(str, df.columns))}"
        )
