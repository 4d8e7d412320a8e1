"""Reading result tables: ``compare`` (side by side), ``varying``, ``summary``, and
``contrast`` (is one variant really better than another?)."""

from __future__ import annotations

from .comparison import WrappedFrame, compare, input_columns, summary, varying
from .contrast import Contrast, contrast, pass_at_k

__all__ = [
    "Contrast", "WrappedFrame", "compare", "contrast", "input_columns", "pass_at_k", "summary",
    "varying",
]  # fmt: skip
