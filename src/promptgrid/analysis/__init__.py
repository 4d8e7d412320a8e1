"""Reading result tables: ``compare`` (side by side, or run against run), ``varying``,
``summary``, and ``contrast`` (is one variant really better than another?)."""

from __future__ import annotations

from .comparison import WrappedFrame, grid_axes, input_columns, summary, varying
from .contrast import Contrast, contrast, pass_at_k
from .runs import align, compare_runs
from .sidebyside import compare

__all__ = [
    "Contrast", "WrappedFrame", "align", "compare", "compare_runs", "contrast", "grid_axes",
    "input_columns", "pass_at_k", "summary",
    "varying",
]  # fmt: skip
