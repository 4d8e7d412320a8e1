"""A worksheet written row by row through xlsxwriter's constant-memory mode.

In that mode xlsxwriter writes a row to the sheet's temp file as soon as the next row starts,
so a 20,000-row results sheet is never held in memory; a row can therefore not be changed once
the next one is begun, and :class:`Sheet` only appends. Each sheet has its own temp file, so
sheets may be written one after another or in turns. The sheet's settings — column widths,
frozen panes, filter, print titles — can be set any time before the workbook is closed; a
merge belongs to the row just appended.

Cells are ``(value, format)`` pairs (or ``None``: nothing in that cell). Text is written as
text, never read as a formula, a link or a number; numbers are numbers, booleans booleans;
``None`` and ``""`` are blank cells that keep their format (an error row is red end to end);
a :class:`Rich` value is text in parts, each with its own font (a score's mark in colour
after an answer). Values must already be made safe (``cells.cell_value``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Cell = tuple[Any, Any] | None  # (value, xlsxwriter Format)


@dataclass(frozen=True)
class Rich:
    """Text in parts, each ``(text, font format or None)``, written as one cell."""

    parts: tuple[tuple[str, Any], ...]

    @property
    def text(self) -> str:
        """The whole text."""
        return "".join(text for text, _ in self.parts)


#: Points per line of 11-point text, as Excel and LibreOffice lay it out.
LINE_PT = 15.0


class Sheet:
    """A sheet of an xlsxwriter ``book`` (a constant-memory workbook), written row by row.

    Printed in landscape with gridlines, like the screen shows it.
    """

    def __init__(self, book: Any, title: str) -> None:
        self._sheet = book.add_worksheet(title)
        self._sheet.set_landscape()
        self._sheet.hide_gridlines(0)  # 0: gridlines on screen and on paper
        self._row = 0

    @property
    def rows_written(self) -> int:
        """Rows appended so far."""
        return self._row

    def append(
        self, row: Iterable[Cell], height: float | None = None, *, blanks: bool = True
    ) -> None:
        """Write one row; ``height`` in points (default: one line). ``blanks=False`` leaves
        empty values out, for a row whose formats show nothing in an empty cell (no fill)."""
        r = self._row
        self._row += 1
        if height is not None:
            self._sheet.set_row(r, height)
        write = self._write
        for col, cell in enumerate(row):
            if cell is not None and (blanks or (cell[0] is not None and cell[0] != "")):
                write(r, col, cell[0], cell[1])

    def merge(self, first_col: int, last_col: int, cell: Cell) -> None:
        """Merge columns ``first_col`` to ``last_col`` (0-based) of the row just appended,
        showing ``cell``."""
        value, style = cell or (None, None)
        r = self._row - 1
        # merge_range writes its value with write(), which guesses the type: merge blank,
        # then write the value (xlsxwriter's documented way for a value of another type)
        self._sheet.merge_range(r, first_col, r, last_col, "", style)
        self._write(r, first_col, value, style)

    def _write(self, r: int, col: int, value: Any, style: Any) -> None:
        sheet = self._sheet
        if value is None or value == "":
            sheet.write_blank(r, col, None, style)
        elif isinstance(value, str):
            sheet.write_string(r, col, value, style)
        elif isinstance(value, Rich):
            parts = [p for p in value.parts if p[0]]  # xlsxwriter refuses empty parts
            if len(parts) < 2 or not any(font for _, font in parts):  # it is plain text
                sheet.write_string(r, col, value.text, style)
                return
            args = [x for text, font in parts for x in ((font, text) if font else (text,))]
            sheet.write_rich_string(r, col, *args, style)
        elif isinstance(value, bool):
            sheet.write_boolean(r, col, value, style)
        else:
            sheet.write_number(r, col, value, style)

    def set_widths(self, widths: Sequence[float]) -> None:
        """Column widths in characters, left to right."""
        for col, width in enumerate(widths):
            self._sheet.set_column(col, col, round(width, 1))

    def freeze(self, rows: int, cols: int) -> None:
        """Keep the top ``rows`` rows and the left ``cols`` columns in view."""
        self._sheet.freeze_panes(rows, cols)

    def print_titles(self, rows: int, cols: int = 0) -> None:
        """Print the top ``rows`` rows (and the left ``cols`` columns) on every page."""
        self._sheet.repeat_rows(0, rows - 1)
        if cols:
            self._sheet.repeat_columns(0, cols - 1)

    def filter(self, first_row: int, last_row: int, cols: int) -> None:
        """A filter on the first ``cols`` columns, header in ``first_row`` (rows 0-based)."""
        self._sheet.autofilter(first_row, 0, last_row, cols - 1)

    def fit_to_width(self) -> None:
        """Print one page wide (for sheets of a few columns)."""
        self._sheet.fit_to_pages(1, 0)

    def print_columns(self, cols: int) -> None:
        """Print the first ``cols`` columns of the rows written, one page wide."""
        self._sheet.print_area(0, 0, max(self._row, 1) - 1, cols - 1)
        self.fit_to_width()

    @staticmethod
    def lines_height(lines: int) -> float | None:
        """The height of a row of ``lines`` lines of text (None: the default, one line)."""
        return None if lines <= 1 else lines * LINE_PT
