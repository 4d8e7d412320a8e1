"""A run's totals from its table, as the XLSX run sheet and the HTML report show them."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["completeness", "totals"]


def completeness(calls: int, cells: int) -> str:
    """Whether every cell of the grid has a result, in words (a run's files are written
    before its status is final, so the status is not what they show)."""
    if calls >= cells:
        return "complete: every cell has a result"
    return f"incomplete: {calls:,} of {cells:,} cells have a result (resume the run to finish)"


def totals(df: pd.DataFrame, cells: int | None = None) -> list[tuple[str, Any, str]]:
    """(label, value, kind) rows: cells in the grid (if known), calls with a result, errors,
    error rate, cached, tokens, cost and mean latency of the calls actually sent. ``kind`` is
    ``int``, ``percent``, ``tokens``, ``cost`` or ``latency``."""
    calls = len(df)
    cached = df["cached"].fillna(False).astype(bool) if calls else pd.Series(dtype=bool)
    errors = int((df["status"] != "ok").sum()) if calls else 0
    latency = pd.to_numeric(df["latency_s"], errors="coerce")[~cached] if calls else None
    rows: list[tuple[str, Any, str]] = (
        [] if cells is None else [("cells in the grid", cells, "int")]
    )
    return [
        *rows,
        ("calls with a result", calls, "int"),
        ("errors", errors, "int"),
        ("error rate", errors / calls if calls else None, "percent"),
        ("cached", int(cached.sum()), "int"),
        ("prompt tokens", _sum(df, "prompt_tokens"), "tokens"),
        ("completion tokens", _sum(df, "completion_tokens"), "tokens"),
        ("cost", _sum(df, "cost_usd"), "cost"),
        ("mean latency", _mean(latency), "latency"),
    ]


def _sum(df: pd.DataFrame, column: str) -> Any:
    values = pd.to_numeric(df[column], errors="coerce") if column in df.columns else None
    if values is None or not values.notna().any():
        return None
    total = values.sum()
    return float(total) if column == "cost_usd" else int(total)


def _mean(values: pd.Series | None) -> float | None:
    if values is None or not values.notna().any():
        return None
    return float(values.mean())
