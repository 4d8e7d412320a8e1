"""Reading result tables: ``compare`` (side by side, or run against run), ``varying``,
``summary``, ``contrast`` (is one variant really better than another?) and ``decide`` (the
verdict for every factor and score, computed once for every view)."""

from __future__ import annotations

from .comparison import WrappedFrame, grid_axes, input_columns, summary, varying
from .contrast import Contrast, contrast, pass_at_k
from .decision import Decision, decide
from .runs import align, compare_runs
from .sidebyside import compare

__all__ = [
    "Contrast", "Decision", "WrappedFrame", "align", "compare", "compare_runs", "contrast",
    "decide", "grid_axes", "input_columns", "pass_at_k", "summary", "varying",
]  # fmt: skip
