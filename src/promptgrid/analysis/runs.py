"""Run against run: line up the calls of several tables by their inputs.

Two runs of an experiment differ in something — a prompt's wording, the model, a parameter —
and a reader wants each answer next to its counterpart. Calls are aligned on the inputs both
tables have and share values of (``prompt``, vars, case columns, params, ``repeat``); an input
whose values the tables do not share (the model went from ``gpt-4o-mini`` to ``gpt-4.1``) is
what *changed*, so it is left out of the alignment and reported instead; an input with one
value in every table is left out too (it tells no call from another). Numbers are compared
as numbers (``0`` and ``0.0`` align). When the remaining inputs do not tell calls apart, the
n-th call of a key in one table meets the n-th in the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .comparison import WrappedFrame, _cell_values, _require, input_columns

__all__ = ["Alignment", "align", "compare_runs", "run_labels"]

_NTH = "__nth__"


@dataclass(frozen=True)
class Alignment:
    """Where each call of several tables lands: ``rows[i][j]`` is the aligned row of the j-th
    call of table ``i``; ``labels`` has one row per aligned row (the key values, in order of
    first appearance); ``changed`` maps each input left out to its values in each table."""

    keys: list[str]
    changed: dict[str, list[list[Any]]]
    rows: list[pd.Series]
    labels: pd.DataFrame


def align(frames: Sequence[pd.DataFrame]) -> Alignment:
    """Align the calls of ``frames`` (see the module docstring)."""
    inputs = [[c for c in input_columns(f) if c != "run_id"] for f in frames]
    common = [c for c in inputs[0] if all(c in i for i in inputs[1:])]
    keys = [c for c in common if _shared(frames, c)]
    left_out = [c for c in dict.fromkeys(c for i in inputs for c in i) if c not in keys]
    keys = [c for c in keys if _distinct(frames, c) > 1]  # one value everywhere tells nothing
    changed = {c: [_values(f, c) for f in frames] for c in left_out}
    normal = []
    for frame in frames:
        key = pd.DataFrame({c: frame[c].map(_norm) for c in keys}, index=frame.index)
        key[_NTH] = (
            key.groupby(keys, sort=False, dropna=False).cumcount() if keys else range(len(key))
        )
        normal.append(key)
    together = pd.concat(normal, ignore_index=True)
    row = together.groupby([*keys, _NTH], sort=False, dropna=False).ngroup()
    rows, start = [], 0
    for frame in frames:
        rows.append(pd.Series(row.to_numpy()[start : start + len(frame)], index=frame.index))
        start += len(frame)
    originals = pd.concat([f[keys] for f in frames], ignore_index=True)
    first = ~row.duplicated()
    labels = originals[first.to_numpy()].set_axis(row[first].to_numpy()).sort_index()
    return Alignment(keys, changed, rows, labels)


def run_labels(frames: Sequence[pd.DataFrame]) -> list[str]:
    """A column label per table: its run id when each table holds one run of its own, else
    ``A``, ``B``, ..."""
    ids = [list(f["run_id"].unique()) if "run_id" in f.columns else [] for f in frames]
    labels = [str(i[0]) if len(i) == 1 else "" for i in ids]
    if all(labels) and len(set(labels)) == len(labels):
        return labels
    return [chr(ord("A") + n) if n < 26 else f"#{n + 1}" for n in range(len(frames))]


def compare_runs(
    df_a: pd.DataFrame,
    df_b: pd.DataFrame,
    *,
    values: str = "response",
    changed_only: bool = False,
) -> WrappedFrame:
    """Two tables side by side, call by call: one row per aligned call (indexed by the inputs
    they share), a column per table (named by run id), and ``changed``: whether the two values
    differ (a call missing on one side counts as changed). ``attrs["changed"]`` names the
    inputs that differ between the tables, with their values in each."""
    frames = [df_a, df_b]
    for frame in frames:
        _require(frame, [values])
    alignment = align(frames)
    labels = run_labels(frames)
    out = alignment.labels.copy()
    for frame, rows, label in zip(frames, alignment.rows, labels, strict=True):
        cell = _cell_values(frame, values)
        out[label] = pd.Series(cell.to_numpy(), index=rows.to_numpy()).groupby(level=0).first()
    a, b = out[labels[0]], out[labels[1]]
    out["changed"] = ~((a == b) | (a.isna() & b.isna()))
    if changed_only:
        out = out[out["changed"]]
    table = WrappedFrame(out.set_index(alignment.keys) if alignment.keys else out)
    table.attrs["changed"] = {k: v for k, v in alignment.changed.items()}
    return table


def _norm(value: Any) -> Any:
    """A value as it is compared across tables: numbers as floats, missing as None."""
    if value is None or (not isinstance(value, (str, list, dict)) and pd.isna(value)):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    return value


def _values(frame: pd.DataFrame, column: str) -> list[Any]:
    if column not in frame.columns:
        return []
    return [None if pd.isna(v) else v for v in frame[column].drop_duplicates()]


def _distinct(frames: Sequence[pd.DataFrame], column: str) -> int:
    return len(set().union(*(set(f[column].map(_norm)) for f in frames)))


def _shared(frames: Sequence[pd.DataFrame], column: str) -> bool:
    """Whether every table has at least one value of ``column`` in common."""
    common = set(frames[0][column].map(_norm))
    for frame in frames[1:]:
        common &= set(frame[column].map(_norm))
    return bool(common)
