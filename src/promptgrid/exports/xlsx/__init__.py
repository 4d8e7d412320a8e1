"""XLSX: a workbook that reads itself — ``results``, ``compare``, ``summary`` and ``run``.

- ``results`` (:mod:`.results`): one row per call, inputs first, then the answer, errors,
  tokens, latency, cost and ids; streamed batch by batch, so a large run is never held whole.
- ``compare`` and ``summary`` (:mod:`.views`): the side-by-side table (each answer with its
  scores and tool calls) and the verdict (:mod:`.verdict`) then the totals per prompt and
  param, built at the end from the columns they need (they aggregate); a raced run's summary
  opens with its race (:mod:`.race`).
- ``run`` (:mod:`.runsheet`): the run's settings, totals and experiment file.

Text stays text and characters a workbook cannot hold are escaped (:mod:`.cells`). The
workbook is written by xlsxwriter in constant-memory mode, each sheet row by row
(:mod:`.sheet`); its temp files live in a folder of ours, removed whatever happens.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...store import RunInfo
from .cells import CUT_MARK, MAX_CELL, Styles, cell_text
from .results import ResultsSheet
from .sheet import Sheet

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ..choices import Repeats

__all__ = ["CUT_MARK", "MAX_CELL", "XlsxWriter", "cell_text"]

#: The columns the compare, summary and run sheets read (the rest is only in ``results``):
#: what an answer shows (its tool calls too), and what the verdict and the totals count.
VIEW_COLUMNS = ("choice", "response", "tool_calls", "parsed", "parse_error", "refusal",
                "status", "error_type", "error", "cached", "latency_s", "prompt_tokens",
                "completion_tokens", "cost_usd")  # fmt: skip


class XlsxWriter:
    """Streams a run's batches into the results sheet; writes the other sheets at the end."""

    def __init__(self, path: Path, run: RunInfo, *, repeats: Repeats = "stack") -> None:
        import xlsxwriter

        self._run = run
        self._repeats: Repeats = repeats
        self._file = _File(path, "w")
        self._closing = False
        # xlsxwriter keeps a temp file per sheet, and its package's parts, in tmpdir; it
        # removes them only when the workbook is saved (an empty sheet's not even then).
        try:
            self._tmpdir = tempfile.mkdtemp(prefix="promptgrid-xlsx-")
        except BaseException:
            self._file.close()
            raise
        self._book = xlsxwriter.Workbook(self._file, {
            "constant_memory": True,  # rows go to disk as they are written
            "tmpdir": self._tmpdir,
            "strings_to_formulas": False,  # text stays text
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "use_zip64": True,  # a run's answers may come to more than 4 GB
        })  # fmt: skip
        self._styles = Styles(self._book)
        self._sheets = [Sheet(self._book, name)
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
                if n in (*inputs, *VIEW_COLUMNS)
                or (n.startswith("score_") and not n.endswith(".reason"))
            ]  # fmt: skip
        self._kept.append(table.select(self._keep))

    def close(self) -> None:
        """Write the compare, summary and run sheets and save the workbook."""
        from xlsxwriter.exceptions import FileCreateError

        from ...table import to_dataframe
        from .runsheet import write_run
        from .views import write_compare, write_summary

        try:
            self._results.close()
            frame = to_dataframe(iter(self._kept), self._run) if self._kept else _empty(self._run)
            self._kept = []
            _, compare, summary, run = self._sheets
            write_compare(compare, frame, self._styles, repeats=self._repeats)
            if self._run.race is not None:  # a raced run: who won, before the totals
                from .race import write_race

                write_race(summary, self._run.race, self._styles)
            write_summary(summary, frame, self._styles)
            write_run(run, self._run, frame, self._styles)
            self._closing = True
            try:
                self._book.close()
            except FileCreateError as exc:  # xlsxwriter's wrapper of the OSError it met
                cause = exc.__context__  # which names the file and says why (disk full)
                raise (cause if isinstance(cause, OSError) else exc) from None
            self._file.close()
        finally:
            self.abort()

    def abort(self) -> None:
        """Release the sheets' temp files and the workbook's file (the caller removes it)."""
        self._file.dropped = True
        if not self._closing:
            # Closing the workbook is xlsxwriter's only way to close its sheets' files; what
            # it zips goes nowhere.
            self._closing = True
            with contextlib.suppress(Exception):
                self._book.close()
        self._file.close()
        shutil.rmtree(self._tmpdir, ignore_errors=True)


class _File(io.FileIO):
    """The workbook's file; once ``dropped``, it takes every write and keeps nothing.

    A failed save (disk full) leaves xlsxwriter's ZipFile open, and when it is collected it
    writes its end again: into nothing, not into a second failure printed after promptgrid's
    message.
    """

    dropped = False

    def write(self, data: Any) -> int:
        return memoryview(data).nbytes if self.dropped else super().write(data)

    def seek(self, pos: int, whence: int = 0) -> int:
        return pos if self.dropped else super().seek(pos, whence)

    def tell(self) -> int:
        return 0 if self.dropped else super().tell()

    def flush(self) -> None:
        if not self.dropped:
            super().flush()


def _empty(run: RunInfo) -> pd.DataFrame:
    from ...table import schema, to_dataframe

    return to_dataframe(iter([schema(run).empty_table()]), run)
