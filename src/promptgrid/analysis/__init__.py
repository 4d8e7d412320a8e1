"""Reading result tables: ``compare`` (side by side, or run against run), ``varying``,
``summary``."""

from __future__ import annotations

from .comparison import WrappedFrame, grid_axes, input_columns, summary, varying
from .runs import align, compare_runs
from .sidebyside import compare

__all__ = [
    "WrappedFrame", "align", "compare", "compare_runs", "grid_axes", "input_columns", "summary",
    "varying",
]  # fmt: skip
