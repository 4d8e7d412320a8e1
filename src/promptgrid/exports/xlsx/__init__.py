"""XLSX: a workbook that reads itself — ``results``, ``compare``, ``summary`` and ``run``.

- ``results`` (:mod:`.results`): one row per call, inputs first, then the answer, errors,
  tokens, latency, cost and ids; streamed batch by batch, so a large run is never held whole.
- ``compare`` and ``summary`` (:mod:`.views`): the side-by-side table and the totals per
  prompt and param, built at the end from the columns they need (they aggregate).
- ``run`` (:mod:`.runsheet`): the run's settings, totals and experiment file.

Text stays text and characters a workbook cannot hold are escaped (:mod:`.cells`). Sheets are
streamed as XML and packaged by openpyxl (:mod:`.sheet`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from ...store import RunInfo
from .cells import CUT_MARK, MAX_CELL, Styles, cell_text
from .results import ResultsSheet
from .sheet import StreamSheet

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from .. import Repeats

__all__ = ["CUT_MARK", "MAX_CELL", "XlsxWriter", "cell_text"]

#: The columns the compare, summary and run sheets read (the rest is only in ``results``).
VIEW_COLUMNS = ("response", "status", "error_type", "error", "cached", "latency_s",
                "prompt_tokens", "completion_tokens", "cost_usd")  # fmt: skip


class XlsxWriter:
    """Streams a run's batches into the results sheet; writes the other sheets at the end."""

    def __init__(self, path: Path, run: RunInfo, *, repeats: Repeats = "stack") -> None:
        from openpyxl import Workbook

        self._path = path
        self._run = run
        self._repeats: Repeats = repeats
        self._book = Workbook(write_only=True)
        self._styles = Styles(self._book)
        self._sheets = [StreamSheet(self._book, name)
                        for name in ("results", "compare", "summary", "run")]  # fmt: skip
        self._results = ResultsSheet(self._sheets[0], run, self._styles)
        self._kept: list[pa.Table] = []
        self._keep: list[str] | None = None

    def write(self, table: pa.Table) -> None:
        """Append one row per row of the batch to ``results``; keep what the views need."""
        self._results.write(table)
        if self._keep is None:
            from ...analysis import input_columns

            names = table.column_names
            inputs = input_columns(table.slice(0, 0).to_pandas())
            self._keep = [
                n for n in names
                if n in (*inputs, *VIEW_COLUMNS) or (n.startswith("score_") and "." not in n)
            ]  # fmt: skip
        self._kept.append(table.select(self._keep))

    def close(self) -> None:
        """Write the compare, summary and run sheets and save the workbook."""
        from zipfile import ZIP_DEFLATED, ZipFile

        from openpyxl.writer.excel import ExcelWriter

        from ...table import to_dataframe
        from .runsheet import write_run
        from .views import write_compare, write_summary

        self._results.close()
        frame = to_dataframe(iter(self._kept), self._run) if self._kept else _empty(self._run)
        self._kept = []
        _, compare, summary, run = self._sheets
        write_compare(compare, frame, self._styles, repeats=self._repeats)
        write_summary(summary, frame, self._styles)
        write_run(run, self._run, frame, self._styles)
        # Workbook.save leaves its ZipFile open when a write fails (disk full), and its
        # __del__ then fails again, loudly; this one is closed either way.
        with ZipFile(self._path, "w", ZIP_DEFLATED, allowZip64=True) as archive:
            ExcelWriter(self._book, archive).save()

    def abort(self) -> None:
        """Drop the workbook and the sheets' temp files."""
        for sheet in self._sheets:
            with contextlib.suppress(Exception):
                sheet.discard()


def _empty(run: RunInfo) -> pd.DataFrame:
    from ...table import schema, to_dataframe

    return to_dataframe(iter([schema(run).empty_table()]), run)
