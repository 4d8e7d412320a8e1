"""The choices of an export that its writers share, in a module of their own: a writer names
them without importing the exports package, which imports every writer (an import cycle)."""

from __future__ import annotations

from typing import Literal

__all__ = ["Repeats"]

#: How the XLSX compare sheet shows several samples of one cell: stacked in the cell, or a
#: column each.
Repeats = Literal["stack", "columns"]
