"""A worksheet streamed as XML, row by row, into a temp file that openpyxl packages.

openpyxl spends ~30 µs on each cell it writes, which makes a 20,000-row, 25-column results
sheet take ~15 s. Here each row is one formatted string (~1 µs a cell): openpyxl still builds
everything else — the style table, the workbook, the package — and serializes the sheet's own
settings (frozen panes, column widths, filter, merged cells, page setup) with its own classes.
``StreamSheet`` is a write-only worksheet whose rows take that shortcut; openpyxl's
``ExcelWriter`` writes it into the archive like any other.

Cells are ``(value, style index)`` pairs (or ``None``): text is an inline string, numbers
are numbers, booleans are booleans. Values must already be made safe (``cells.cell_value``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl.packaging.relationship import RelationshipList
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.xml.functions import tostring

Cell = tuple[Any, int] | None

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
)
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
#: Points per line of 11-point text, as Excel and LibreOffice lay it out.
LINE_PT = 15.0


class _Written:
    """What openpyxl's ``ExcelWriter`` expects of a closed sheet's writer."""

    def __init__(self, out: str) -> None:
        self.out = out
        self._rels = RelationshipList()

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            os.remove(self.out)


class StreamSheet(WriteOnlyWorksheet):  # type: ignore[misc]  # openpyxl is untyped
    """A sheet of ``book`` whose rows are written straight to a temp file as XML.

    Set ``widths``, ``freeze_panes`` and page settings before the first ``append``; the
    filter (``auto_filter.ref``) and merged cells any time before the workbook is saved.
    """

    def __init__(self, book: Any, title: str) -> None:
        super().__init__(book, title)
        book._add_sheet(self)  # as Workbook.create_sheet does for write-only sheets
        self._file: Any = None
        self._row = 0
        self._done: _Written | None = None
        self.page_setup.orientation = "landscape"
        self.print_options.gridLines = True

    def fit_to_width(self) -> None:
        """Print one page wide (for sheets of a few columns)."""
        self.page_setup.fitToWidth = 1
        self.page_setup.fitToHeight = 0
        self.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)

    @property
    def closed(self) -> bool:
        return self._done is not None

    @property
    def rows_written(self) -> int:
        """Rows appended so far."""
        return self._row

    def set_widths(self, widths: Sequence[float]) -> None:
        """Column widths in characters, left to right."""
        for index, width in enumerate(widths, 1):
            self.column_dimensions[get_column_letter(index)].width = round(width, 1)

    def append(self, row: Iterable[Cell], height: float | None = None) -> None:
        """Write one row; ``height`` in points (default: one line)."""
        if self._file is None:
            self._open()
        self._row += 1
        r = self._row
        parts = [
            f'<row r="{r}" ht="{height:.1f}" customHeight="1">' if height else f'<row r="{r}">'
        ]
        for col, cell in enumerate(row):
            if cell is None:
                continue
            value, style = cell
            ref = f"{_letter(col)}{r}"
            if value is None or value == "":
                parts.append(f'<c r="{ref}" s="{style}"/>')
            elif isinstance(value, str):
                space = ' xml:space="preserve"' if value != value.strip() else ""
                text = value.translate(_ESCAPES)
                parts.append(
                    f'<c r="{ref}" s="{style}" t="inlineStr"><is><t{space}>{text}</t></is></c>'
                )
            elif isinstance(value, bool):
                parts.append(f'<c r="{ref}" s="{style}" t="b"><v>{int(value)}</v></c>')
            else:
                parts.append(f'<c r="{ref}" s="{style}" t="n"><v>{value!r}</v></c>')
        parts.append("</row>")
        self._file.write("".join(parts))

    def lines_height(self, lines: int) -> float | None:
        """The height of a row of ``lines`` lines of text (None: the default, one line)."""
        return None if lines <= 1 else lines * LINE_PT

    def _open(self) -> None:
        fd, name = tempfile.mkstemp(prefix="promptgrid-sheet-", suffix=".xml")
        self._name = name
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
        top = [self.sheet_properties.to_tree(), self.views.to_tree(), self.sheet_format.to_tree()]
        cols = self.column_dimensions.to_tree()
        if cols is not None:
            top.append(cols)
        self._file.write(_HEAD + "".join(_xml(el) for el in top) + "<sheetData>")

    def close(self) -> None:
        """Finish the sheet's XML (openpyxl calls this when it saves the workbook)."""
        if self._done is not None:
            return
        if self._file is None:
            self._open()
        tail = ["</sheetData>"]
        if self.auto_filter.ref:
            tail.append(_xml(self.auto_filter.to_tree()))
        if self.merged_cells:
            cells = "".join(f'<mergeCell ref="{ref.coord}"/>' for ref in self.merged_cells)
            tail.append(f'<mergeCells count="{len(self.merged_cells.ranges)}">{cells}</mergeCells>')
        tail += [_xml(self.print_options.to_tree()), _xml(self.page_margins.to_tree()),
                 _xml(self.page_setup.to_tree()), "</worksheet>"]  # fmt: skip
        self._file.write("".join(tail))
        self._file.close()
        self._done = _Written(self._name)
        self._writer = self._done

    def discard(self) -> None:
        """Drop the temp file (after a failure)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            with contextlib.suppress(OSError):
                os.remove(self._name)


_LETTERS: list[str] = []


def _letter(index: int) -> str:
    """The column letter of a 0-based index (cached)."""
    while len(_LETTERS) <= index:
        _LETTERS.append(get_column_letter(len(_LETTERS) + 1))
    return _LETTERS[index]


def _xml(element: Any) -> str:
    text: bytes = tostring(element)
    return text.decode("utf-8")
