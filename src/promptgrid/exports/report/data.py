"""The report's data: one JSON document the page reads, built from result tables.

One table (one run) is laid out as :func:`promptgrid.compare` lays it out: a grid row per
combination of the vars that vary, a grid column per prompt × varying params. Several tables
(run against run) are aligned by :func:`promptgrid.analysis.align`: a grid row per aligned
call, a grid column per run. Either way each call carries its grid row and column, so the page
only groups, filters and draws.

Calls are stored column by column (a list per field); every input the page filters on is
coded as an index into its list of values, so a filter is an array lookup. So are the result
filters: each score (pass, fail, no score; a number's values) and the tools a call called.
Each call carries what every answer view shows (:mod:`promptgrid.analysis.answers`): its
text, refusal, tool calls (``name(args)``, compact) and parse error, and its scores.

The summary view draws ``decision``: :func:`promptgrid.decide` of the table (run against run:
of the runs together, the run a factor), computed here once, as the terminal and the XLSX
summary compute it from the same table. Its charts group by what varies (the prompt, the
params that vary, the run).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ...analysis import align, grid_axes, input_columns, summary
from ...analysis.answers import score_columns, tool_calls_text
from ...analysis.decision import Decision, decide
from ...analysis.runs import run_labels
from ...analysis.statistics import p_text
from ...errors import UsageError
from ...store import RunInfo
from ...version import __version__
from ..totals import completeness, totals

if TYPE_CHECKING:
    from ...store import RunInfo

__all__ = ["build", "to_json"]

#: Per-call fields shipped as they are (besides the inputs, which are coded).
CALL_FIELDS = ("repeat", "response", "status", "error_type", "error", "latency_s",
               "prompt_tokens", "completion_tokens", "cost_usd", "cached", "refusal",
               "parse_error")  # fmt: skip
#: A numeric score with more values than this is filtered by quartile, not by value.
MAX_SCORE_LEVELS = 12
NO_TOOL = "(no tool call)"
#: Charts: (field of summary, label, unit kind).
CHARTS = (("latency_s", "Mean latency", "latency"), ("tokens", "Mean tokens per call", "tokens"),
          ("cost_usd", "Cost", "cost"), ("error_rate", "Error rate", "percent"))  # fmt: skip


def build(
    frames: Sequence[pd.DataFrame], runs: Mapping[str, RunInfo], *, title: str | None = None
) -> dict[str, Any]:
    """The report's data for one table (a grid) or several (aligned run against run)."""
    frames = [f.reset_index(drop=True) for f in frames]
    labels = run_labels(frames) if len(frames) > 1 else []
    every = pd.concat(frames, ignore_index=True)
    if len(frames) == 1:
        grid = _grid(frames[0])
        changed: dict[str, list[list[Any]]] = {}
    else:
        grid, changed = _aligned(frames, labels)
    filters = [c for c in input_columns(every) if c not in ("run_id", "repeat")]
    filters = [c for c in filters if every[c].nunique(dropna=False) > 1]
    calls: dict[str, list[Any]] = {"row": grid["row"], "col": grid["col"]}
    levels: dict[str, list[str]] = {}
    if labels:
        calls["run"] = [i for i, f in enumerate(frames) for _ in range(len(f))]
        levels["run"] = labels
    for name in filters:
        codes, values = pd.factorize(every[name], use_na_sentinel=False)
        calls[name] = codes.tolist()
        levels[name] = [_show(v) for v in values]
    for name in CALL_FIELDS:
        calls[name] = _plain_list(every[name]) if name in every.columns else [None] * len(every)
    calls["response"] = _responses(every, calls["response"])
    calls["tools"] = _tools(every)
    scores = _scores(every)
    extra = _result_filters(every, scores, calls["tools"], calls, levels)
    run_ids = list(dict.fromkeys(str(r) for r in every["run_id"].unique()))  # in order
    decided = every
    if labels:  # the decision sees each table as the run the page names it
        decided = every.assign(run_id=[labels[i] for i, f in enumerate(frames) for _ in f.index])
    return {
        "title": title or _title(frames, runs),
        "version": __version__,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "runs" if labels else "grid",
        "filters": (["run"] if labels else []) + filters,
        "resultFilters": extra,
        "scores": scores,
        "decision": _decision(decided),
        "levels": levels,
        "fixed": _fixed(every),
        "changed": {k: [[_show(v) for v in vs] for vs in values] for k, values in changed.items()},
        "grid": {
            "rowNames": grid["rowNames"],
            "colNames": grid["colNames"],
            "rows": grid["rows"],
            "cols": grid["cols"],
        },
        "calls": calls,
        "runs": [
            _run(run_id, runs.get(run_id), every[every["run_id"] == run_id]) for run_id in run_ids
        ],
        "charts": _charts(every, labels, frames),
        "race": _race(runs, run_ids) if len(frames) == 1 else None,
    }


def to_json(data: Mapping[str, Any]) -> str:
    """``data`` as JSON safe inside a ``<script>`` element (no ``<`` at all)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c")


# ---------------------------------------------------------------------------- layout


def _grid(df: pd.DataFrame) -> dict[str, Any]:
    rows, cols = grid_axes(df)
    row, row_labels = _groups(df, rows)
    col, col_labels = _groups(df, cols)
    return {"row": row, "col": col, "rows": row_labels, "cols": col_labels,
            "rowNames": rows, "colNames": cols}  # fmt: skip


def _aligned(
    frames: Sequence[pd.DataFrame], labels: list[str]
) -> tuple[dict[str, Any], dict[str, list[list[Any]]]]:
    alignment = align(frames)
    row = [int(r) for rows in alignment.rows for r in rows]
    keys = alignment.keys
    row_labels = [[_show(v) for v in values] for values in alignment.labels.itertuples(index=False)]
    if not keys:  # nothing tells the calls apart: number them
        row_labels = [[str(n + 1)] for n in range(len(alignment.labels))]
    grid = {"row": row, "col": [i for i, f in enumerate(frames) for _ in range(len(f))],
            "rows": row_labels, "cols": [[label] for label in labels],
            "rowNames": keys or ["call"], "colNames": ["run"]}  # fmt: skip
    return grid, alignment.changed


def _groups(df: pd.DataFrame, keys: list[str]) -> tuple[list[int], list[list[str]]]:
    """Each row's group number (in order of first appearance) and each group's labels."""
    if not keys or df.empty:
        return [0] * len(df), [[]]
    codes = df.groupby(keys, sort=False, dropna=False).ngroup()
    first = df.loc[~codes.duplicated(), keys]
    return codes.tolist(), [[_show(v) for v in row] for row in first.itertuples(index=False)]


# ---------------------------------------------------------------------------- answers


def _responses(df: pd.DataFrame, texts: list[Any]) -> list[Any]:
    """Each answer's text; a structured output without text shows its parsed JSON."""
    if "parsed" not in df.columns:
        return texts
    parsed = df["parsed"].to_numpy(object)
    pairs = zip(texts, parsed, strict=True)
    return [p if t is None and isinstance(p, str) else t for t, p in pairs]


def _tools(df: pd.DataFrame) -> list[str | None]:
    """Each call's tool calls as the answer views show them (``→ name(args)`` a line)."""
    if "tool_calls" not in df.columns:
        return [None] * len(df)
    return [None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
            else tool_calls_text(v) or None for v in df["tool_calls"].astype(object)]  # fmt: skip


def _scores(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Each score: its column, name, kind (``bool`` or ``numeric``) and value per call."""
    out = []
    for column in score_columns(df):
        values = df[column]
        binary = pd.api.types.is_bool_dtype(values) or bool(
            values.dropna().map(lambda v: isinstance(v, (bool, np.bool_))).all()
        )
        shown = [None if v is None else bool(v) if binary else v for v in _plain_list(values)]
        out.append({"column": column, "name": column.removeprefix("score_"),
                    "kind": "bool" if binary else "numeric", "values": shown})  # fmt: skip
    return out


def _result_filters(
    df: pd.DataFrame,
    scores: list[dict[str, Any]],
    tools: list[str | None],
    calls: dict[str, list[Any]],
    levels: dict[str, list[str]],
) -> list[dict[str, str]]:
    """Filters on what came back, coded as the inputs are: each score's outcome (a number's
    values, or its quartiles when it has many) and the functions a call called."""
    out = []
    for score in scores:
        label, names = _score_levels(score)
        if len(set(label)) > 1:
            key = score["column"]
            calls[key], levels[key] = label, names
            out.append({"key": key, "label": f"score: {score['name']}"})
    called = [NO_TOOL if t is None else ", ".join(_names(t)) for t in tools]
    if any(t is not None for t in tools):
        codes, values = pd.factorize(pd.Series(called, dtype=object))
        calls["tool"], levels["tool"] = codes.tolist(), [str(v) for v in values]
        out.append({"key": "tool", "label": "tool called"})
    return out


def _score_levels(score: dict[str, Any]) -> tuple[list[int], list[str]]:
    values = score["values"]
    if score["kind"] == "bool":
        names = ["pass", "fail", "no score"]
        return [2 if v is None else 0 if v else 1 for v in values], names
    present = sorted({v for v in values if v is not None})
    if len(present) <= MAX_SCORE_LEVELS:
        names = [_show(v) for v in present] + ["no score"]
        index = {v: i for i, v in enumerate(present)}
        return [len(present) if v is None else index[v] for v in values], names
    scored = np.asarray([v for v in values if v is not None], float)
    edges = np.unique(np.quantile(scored, [0.25, 0.5, 0.75]))  # a quarter of the calls a bin
    tops = [*edges[1:], max(present)]  # bins: up to the first quartile, then between edges
    bins = [f"≤ {_show(edges[0])}"]
    bins += [f"{_show(lo)} – {_show(hi)}" for lo, hi in zip(edges, tops, strict=True)]
    codes = [len(bins) if v is None else int(np.searchsorted(edges, v)) for v in values]
    return codes, [*bins, "no score"]


def _names(tools: str) -> list[str]:
    """The functions named in a tool-calls text (``→ name(...)`` lines), in order, once."""
    found = (line.removeprefix("→ ").split("(", 1)[0] for line in tools.split("\n"))
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------------------- the decision


def _decision(df: pd.DataFrame) -> dict[str, Any]:
    """``decide(df)`` as the page draws it: its JSON, each p-value also as the verdicts word
    it; or why there is none."""
    try:
        decision: Decision = decide(df)
    except UsageError as exc:  # a table decide() refuses still gets its report
        return {"error": str(exc)}
    data = decision.to_dict()
    for row in data["pairs"]:
        for key in ("p_value", "p_adjusted"):
            row[f"{key}_text"] = None if row[key] is None else p_text(row[key])
    data["verdicts"] = decision.verdicts()
    return data


# ---------------------------------------------------------------------------- parts


def _fixed(df: pd.DataFrame) -> dict[str, str]:
    """Inputs with one value in every call (fixed params), to show once."""
    out = {}
    for name in input_columns(df):
        if name in ("run_id", "prompt", "repeat") or df.empty:
            continue
        if df[name].nunique(dropna=False) == 1:
            out[name] = _show(df[name].iloc[0])
    return out


def _run(run_id: str, info: RunInfo | None, df: pd.DataFrame) -> dict[str, Any]:
    """A run's header, totals and (when its store was found) settings and experiment."""
    out: dict[str, Any] = {"id": run_id, "totals": [
        [label, _plain(value), kind] for label, value, kind in
        totals(df, info.total if info else None)
    ]}  # fmt: skip
    if info is None:
        return out
    import yaml

    out.update(
        experiment=info.experiment, results=completeness(len(df), info.total),
        created=info.created_at, source=info.source, description=info.spec.get("description"),
        settings={k: v if isinstance(v, str) else json.dumps(v) for k, v in info.options.items()},
        spec=yaml.safe_dump(info.spec, sort_keys=False, allow_unicode=True, width=100),
    )  # fmt: skip
    return out


def _charts(
    every: pd.DataFrame, labels: list[str], frames: Sequence[pd.DataFrame]
) -> list[dict[str, Any]]:
    """Bars per variant — the prompt and the params that vary (× run) — of latency, tokens,
    cost, error rate and each pass/fail score's pass rate."""
    if every.empty:
        return []
    _, by = grid_axes(every.drop(columns="run_id", errors="ignore"))  # the columns: what varies
    work = every
    if labels:
        work = every.assign(run=[labels[i] for i, f in enumerate(frames) for _ in range(len(f))])
        by = ["run", *by]
    table = summary(work, by=by)
    calls = table["calls"].astype(float)
    tokens = (table["prompt_tokens"].astype(float).fillna(0)
              + table["completion_tokens"].astype(float).fillna(0)) / calls  # fmt: skip
    values = {"latency_s": table["latency_s"], "tokens": tokens, "cost_usd": table["cost_usd"],
              "error_rate": table["error_rate"]}  # fmt: skip
    names = [" · ".join(_show(v) for v in (i if isinstance(i, tuple) else (i,)))
             for i in table.index]  # fmt: skip
    charts = [
        {"label": label, "kind": kind,
         "bars": [[name, _plain(v)] for name, v in zip(names, values[key], strict=True)]}
        for key, label, kind in CHARTS
    ]  # fmt: skip
    # A pass/fail score: its pass rate per group, with the 95 % Wilson interval summary() gives.
    for column in (c for c in table.columns if f"{c}_low" in table.columns):
        bars = [
            [name, _plain(rate), _plain(low), _plain(high)]
            for name, rate, low, high in zip(
                names, table[column], table[f"{column}_low"], table[f"{column}_high"], strict=True
            )
        ]
        label = f"Pass rate of {column.removeprefix('score_')} (95% interval)"
        charts.append({"label": label, "kind": "rate", "bars": bars})
    return charts


def _race(runs: Mapping[str, RunInfo], run_ids: list[str]) -> dict[str, Any] | None:
    """The race tab's data, for one raced run (see ``.race``)."""
    info = runs.get(run_ids[0]) if len(run_ids) == 1 else None
    if info is None or info.race is None:
        return None
    from .race import race_data

    return race_data(info.race)


def _title(frames: Sequence[pd.DataFrame], runs: Mapping[str, RunInfo]) -> str:
    names = [runs[r].experiment for r in runs if r in runs]
    name = " vs ".join(dict.fromkeys(names)) if names else "promptgrid"
    if len(frames) > 1:
        return f"{name}: run against run"
    return name


# ---------------------------------------------------------------------------- values


def _show(value: Any) -> str:
    """A label as the page shows it."""
    value = _plain(value)
    return "(none)" if value is None else str(value)


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python ones; NaN, NA and infinities as null."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain_list(column: pd.Series) -> list[Any]:
    """A column as JSON values (:func:`_plain`), numbers a column at a time: every call's
    values go into the page, so this runs over a column per input, result and score."""
    if pd.api.types.is_float_dtype(column.dtype):
        numbers = column.to_numpy(dtype=float, na_value=np.nan)
        out: list[Any] = numbers.tolist()
        for i in np.flatnonzero(~np.isfinite(numbers)).tolist():
            out[i] = None
        return out
    if pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        plain: list[Any] = column.astype(object).where(column.notna(), None).tolist()
        return plain  # Python ints and bools, None for NA
    values: list[Any] = column.astype(object).where(column.notna(), None).tolist()
    return [v if v is None or type(v) is str else _plain(v) for v in values]
