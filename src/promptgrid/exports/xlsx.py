"""XLSX: a ``results`` sheet, streamed through openpyxl's write-only workbook.

Every text is written as a text cell (``data_type "s"``), so a value such as ``=1+1``,
``=HYPERLINK(...)`` or ``#N/A`` stays the text it is instead of becoming a live formula or an
error value. Characters an XLSX file cannot hold (the control characters ``\\x00``-``\\x08``,
``\\x0b``, ``\\x0c``, ``\\x0e``-``\\x1f``, and U+FFFE, U+FFFF and lone surrogates, which XML
forbids) are shown as visible escapes: ESC becomes the four characters ``\\x1b``. A cell holds
at most 32,767 characters (UTF-16 units, as Excel counts them): longer text is cut and ends
with `` [...]``. NaN is an empty cell; infinities are the texts ``inf`` and ``-inf``. Parquet,
CSV and JSONL keep every text exactly.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import RunInfo
from ..table import columns

if TYPE_CHECKING:
    import pyarrow as pa

MAX_CELL = 32_767  #: Excel's limit, in UTF-16 code units
CUT_MARK = " [...]"
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cell_text(value: str) -> str:
    """``value`` as an XLSX cell can hold it: illegal characters escaped, cut to the limit."""
    if _ILLEGAL.search(value):
        value = _ILLEGAL.sub(_escape, value)
    if len(value) <= MAX_CELL // 2:  # even all-astral text fits: skip the UTF-16 count
        return value
    units = value.encode("utf-16-le")
    if len(units) <= 2 * MAX_CELL:
        return value
    # "ignore" drops half a surrogate pair left at the cut
    head = units[: 2 * (MAX_CELL - len(CUT_MARK))].decode("utf-16-le", "ignore")
    return head + CUT_MARK


class XlsxWriter:
    """Streams a run's batches into one workbook (rows go to openpyxl's own temp file)."""

    def __init__(self, path: Path, run: RunInfo) -> None:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell

        self._path = path
        self._new_cell = WriteOnlyCell
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet("results")
        self._sheet.append([self._cell(name) for name, _ in columns(run)])

    def _cell(self, value: Any) -> Any:
        if isinstance(value, str):
            cell = self._new_cell(self._sheet, cell_text(value))
            cell.data_type = "s"  # after the value: openpyxl makes "=..." a formula
            return cell
        if isinstance(value, float) and not math.isfinite(value):
            return None if math.isnan(value) else self._cell(str(value))
        return value

    def write(self, table: pa.Table) -> None:
        """Append one row per row of the batch."""
        for row in zip(*(column.to_pylist() for column in table.columns), strict=True):
            self._sheet.append([self._cell(value) for value in row])

    def close(self) -> None:
        """Save the workbook: the file is complete."""
        from zipfile import ZIP_DEFLATED, ZipFile

        from openpyxl.writer.excel import ExcelWriter

        # Workbook.save leaves its ZipFile open when a write fails (disk full), and its
        # __del__ then fails again, loudly; this one is closed either way.
        with ZipFile(self._path, "w", ZIP_DEFLATED, allowZip64=True) as archive:
            ExcelWriter(self._book, archive).save()

    def abort(self) -> None:
        """Drop the workbook and openpyxl's temp file of the sheet."""
        with contextlib.suppress(Exception):
            self._sheet.close()
        writer = getattr(self._sheet, "_writer", None)  # openpyxl's, in the system temp folder
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.cleanup()
