"""Reading result tables: ``compare`` (side by side), ``varying``, ``summary``."""

from __future__ import annotations

from .comparison import WrappedFrame, compare, input_columns, summary, varying

__all__ = ["WrappedFrame", "compare", "input_columns", "summary", "varying"]
