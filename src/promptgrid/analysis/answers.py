"""What every answer view shows of a call: its answer, the tools it called, its scores.

One rule for the terminal, the XLSX sheets, ``compare`` and the HTML report, so no view shows
a call differently:

- :func:`answer_texts`: a call that failed shows ``[error_type] error``; one that answered
  shows its text, then a refusal (``[refused] ...``), each tool call on a line of its own
  (``→ get_weather(city="Paris", days=3)``: the function's name and its arguments, compact,
  cut at ``MAX_ARGUMENTS`` characters), and why a structured output did not parse
  (``[not JSON: ...]``). A structured output with no text shows its parsed JSON.
- :func:`score_marks`: each score of a call as a :class:`Mark` — its name and ``pass`` or
  ``fail`` (a pass/fail score) or its value — which a view colours by ``state``.

A table's tool calls and scores come from a server and a scorer: anything that is not the
shape promptgrid writes (arguments that are not JSON, a name that is not text) is shown as
the text it is, never an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_ARGUMENTS", "Mark", "answer_texts", "mark", "marks_text", "score_columns",
           "score_marks", "tool_calls_text"]  # fmt: skip

#: A tool call's arguments are shown up to this many characters (the table holds them all).
MAX_ARGUMENTS = 300
#: Where a parse error is cut.
_MAX_NOTE = 200
_ARROW = "→ "


@dataclass(frozen=True)
class Mark:
    """One score of one call as a view shows it: ``text`` (``✓ correct``, ``✗ concise``,
    ``quality 4``, ``correct –`` when the call has no score) and ``state``: ``pass``,
    ``fail``, ``value`` (a number) or ``none``."""

    text: str
    state: str


def answer_texts(df: pd.DataFrame) -> pd.Series:
    """Per row, the text an answer view shows (see the module docstring)."""
    response = (
        df["response"] if "response" in df.columns else pd.Series(None, index=df.index)
    ).astype(object)
    extras = [c for c in ("refusal", "tool_calls", "parse_error", "parsed") if c in df.columns]
    failed = _failed(df)
    if not extras and not failed.any():
        return response
    out = response.copy()
    rows = failed.copy()
    for column in extras:
        rows |= df[column].notna().to_numpy()
    columns = [c for c in ("response", "status", "error_type", "error", *extras)
               if c in df.columns]  # fmt: skip
    picked = df.loc[rows, columns]
    for index, record in zip(picked.index, picked.to_dict("records"), strict=True):
        out.at[index] = _one(record)
    return out


def tool_calls_text(value: Any) -> str:
    """The tool calls of the ``tool_calls`` column's JSON text, one line each:
    ``→ name(key=value, ...)``; text that is not a list of calls is shown as it is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        calls = json.loads(value) if isinstance(value, str) else value
    except (ValueError, RecursionError):
        return _ARROW + _cut(str(value))
    if not isinstance(calls, list):
        return _ARROW + _cut(str(value))
    return "\n".join(_ARROW + _call(call) for call in calls)


def score_columns(df: pd.DataFrame) -> list[str]:
    """The table's score columns: ``score_<name>`` (and ``score_<name>.<key>``), bool or
    numeric — not a judge's ``.reason`` nor ``score_errors``."""
    out = []
    for column in map(str, df.columns):
        if not column.startswith("score_") or column == "score_errors":
            continue
        if not column.endswith(".reason") and _is_score(df[column]):
            out.append(column)
    return out


def _is_score(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return True
    present = series.dropna()
    return bool(len(present) and present.map(lambda v: isinstance(v, bool)).all())


def score_marks(df: pd.DataFrame, columns: list[str] | None = None) -> list[tuple[Mark, ...]]:
    """Per row, a :class:`Mark` for each score column (default: every score of the table);
    a row that failed has none (its error is what shows)."""
    columns = score_columns(df) if columns is None else columns
    if not columns:
        return [()] * len(df)
    failed = _failed(df)
    names = [c.removeprefix("score_") for c in columns]
    values = [df[c].astype(object).tolist() for c in columns]
    out: list[tuple[Mark, ...]] = []
    for r in range(len(df)):
        if failed[r]:
            out.append(())
            continue
        out.append(tuple(mark(name, column[r]) for name, column in zip(names, values, strict=True)))
    return out


def mark(name: str, value: Any) -> Mark:
    """The mark of score ``name`` with ``value`` (bool, number, or missing)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return Mark(f"{name} –", "none")
    if isinstance(value, (bool, np.bool_)):
        return Mark(f"✓ {name}", "pass") if value else Mark(f"✗ {name}", "fail")
    return Mark(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}", "value")


def marks_text(marks: tuple[Mark, ...]) -> str:
    """Marks as one line of plain text (``✓ correct  ✗ concise``)."""
    return "  ".join(m.text for m in marks)


# ---------------------------------------------------------------------------- helpers


def _failed(df: pd.DataFrame) -> Any:
    if "status" not in df.columns:
        return pd.Series(False, index=df.index).to_numpy()
    return (df["status"].astype(object) != "ok").to_numpy() & df["status"].notna().to_numpy()


def _one(row: dict[str, Any]) -> str | None:
    """The text of one call that failed or carries more than its text."""
    text = _present(row.get("response"))
    if row.get("status") not in (None, "ok") and not text:
        kind = _present(row.get("error_type")) or "error"
        return f"[{kind}] {_present(row.get('error')) or ''}"
    lines = [text] if text else []
    if refusal := _present(row.get("refusal")):
        lines.append(f"[refused] {refusal}")
    if not text and (parsed := _present(row.get("parsed"))):
        lines.append(_compact(parsed))
    if tools := tool_calls_text(_present(row.get("tool_calls"))):
        lines.append(tools)
    if error := _present(row.get("parse_error")):
        lines.append(f"[not JSON: {_cut(str(error), _MAX_NOTE)}]")
    return "\n".join(lines) if lines else text


def _call(call: Any) -> str:
    if not isinstance(call, dict):
        return _cut(json.dumps(call, ensure_ascii=False))
    name = str(call.get("name") or call.get("type") or "call")
    raw = call.get("arguments", call.get("input"))
    return f"{name}({_cut(_arguments(raw))})"


def _arguments(raw: Any) -> str:
    """``key=value, ...`` for a JSON object (values as JSON); anything else as its text."""
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            return raw
    if isinstance(value, dict):
        return ", ".join(f"{k}={_json(v)}" for k, v in value.items())
    return raw if isinstance(raw, str) else _json(value)


def _compact(text: str) -> str:
    try:
        return _json(json.loads(text))
    except (ValueError, RecursionError):
        return text


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (ValueError, TypeError, RecursionError):
        return str(value)


def _cut(text: str, limit: int = MAX_ARGUMENTS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _present(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
