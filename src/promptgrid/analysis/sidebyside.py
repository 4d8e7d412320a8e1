"""``promptgrid.compare``: one table's answers side by side, or two tables' call by call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import pandas as pd

from ..errors import UsageError
from .comparison import Agg, WrappedFrame
from .comparison import compare as compare_grid
from .runs import compare_runs

__all__ = ["compare"]


@overload
def compare(
    df: pd.DataFrame,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    values: str = "response",
    *,
    aggfunc: Agg | None = None,
) -> WrappedFrame: ...


@overload
def compare(
    df: pd.DataFrame,
    rows: pd.DataFrame,
    *,
    values: str = "response",
    changed_only: bool = False,
) -> WrappedFrame: ...


def compare(
    df: pd.DataFrame,
    rows: Sequence[str] | pd.DataFrame | None = None,
    cols: Sequence[str] | None = None,
    values: str = "response",
    *,
    aggfunc: Agg | None = None,
    changed_only: bool = False,
) -> WrappedFrame:
    """The answers side by side.

    ``compare(df, rows=None, cols=None, values="response", *, aggfunc=None)``: one table as a
    grid — one row per combination of ``rows``, one column per combination of ``cols`` (see
    :func:`promptgrid.analysis.comparison.compare` for the defaults and how repeats stack).

    ``compare(df_a, df_b, *, values="response", changed_only=False)``: run against run — the
    calls of two tables aligned by their inputs (prompt, vars, params other than the ones that
    changed, repeat), one column per run and a ``changed`` column; ``changed_only=True`` keeps
    the rows whose values differ. ``attrs["changed"]`` names the inputs that differ between
    the runs (see :mod:`promptgrid.analysis.runs`).

    Examples::

        promptgrid.compare(df)
        promptgrid.compare(df, rows=["animal", "temperature"], cols=["prompt"])
        promptgrid.compare(promptgrid.load(run_a), promptgrid.load(run_b), changed_only=True)
    """
    if isinstance(rows, pd.DataFrame):
        if cols is not None or aggfunc is not None:
            raise UsageError("compare(df_a, df_b) takes values= and changed_only= only")
        return compare_runs(df, rows, values=values, changed_only=changed_only)
    if changed_only:
        raise UsageError(
            "changed_only= compares two tables: compare(df_a, df_b, changed_only=True)"
        )
    return compare_grid(df, rows, cols, values, aggfunc=aggfunc)
