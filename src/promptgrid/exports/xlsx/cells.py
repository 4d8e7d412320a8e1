"""Cell values and cell styles shared by the sheets.

Every text is written as a text cell, so a value such as ``=1+1``, ``=HYPERLINK(...)`` or
``#N/A`` stays the text it is instead of becoming a live formula or an error value. Characters
an XLSX file cannot hold (the control characters ``\\x00``-``\\x08``, ``\\x0b``, ``\\x0c``,
``\\x0e``-``\\x1f``, and U+FFFE, U+FFFF and lone surrogates, which XML forbids) are shown as
visible escapes: ESC becomes the four characters ``\\x1b``. A cell holds at most 32,767
characters (UTF-16 units, as Excel counts them): longer text is cut and ends with `` [...]``.
NaN is an empty cell; infinities are the texts ``inf`` and ``-inf``. Parquet, CSV and JSONL
keep every text exactly.

Styles are registered once with openpyxl (which writes the workbook's style table) and used by
their index, so a row of 25 cells costs no style lookup.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_CELL = 32_767  #: Excel's limit, in UTF-16 code units
CUT_MARK = " [...]"
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

#: Number formats by column kind (Excel and LibreOffice read both).
NUMBER_FORMATS = {
    "int": "0",
    "tokens": "#,##0",
    "float": "0.0#####",  # 0.0 stays 0.0 (General shows 0), 0.25 stays 0.25
    "cost": '"$"#,##0.000000',
    "latency": '0.000" s"',
    "percent": "0.0%",
}
_FILLS = {"error": ("FFC7CE", "9C0006"), "mixed": ("FFEB9C", "7F4F00")}  # Excel's bad/neutral
HEADER_FILL = "D9D9D9"
INPUT_HEADER_FILL = "DDEBF7"
BODY_FONT = "Calibri"  # openpyxl's default; LibreOffice substitutes metric-compatible Carlito
MONO_FONT = "Courier New"  # LibreOffice substitutes the metric-compatible Liberation Mono


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


def cell_value(value: Any) -> Any:
    """A Python value as a cell holds it: text made safe, NaN empty, infinities as text."""
    if isinstance(value, str):
        return cell_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


class Styles:
    """The workbook's cell styles, registered with openpyxl on first use, by name.

    A style is ``kind`` (``text``, ``wrap``, ``mono``, a number kind of ``NUMBER_FORMATS``,
    ``header``, ``input_header``, ``title``, ``label``) in a ``state``: ``ok``, ``error``
    (red: a failed call) or ``mixed`` (amber: some of the calls in a cell failed).
    """

    def __init__(self, book: Any) -> None:
        self._book = book
        self._ids: dict[tuple[str, str, bool], int] = {}

    def id(self, kind: str, state: str = "ok", *, left: bool = False) -> int:
        """The style index of ``kind`` in ``state`` (``left``: numbers aligned left, as
        labels and settings read)."""
        key = (kind, state, left)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = self._register(kind, state, left)
        return found

    def _register(self, kind: str, state: str, left: bool) -> int:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

        def font(**style: Any) -> Font:
            return Font(**{"name": BODY_FONT, "size": 11, **style})

        cell = WriteOnlyCell(_Holder(self._book))
        wrap = kind in ("wrap", "header", "input_header", "label")
        cell.alignment = Alignment(
            wrap_text=wrap, vertical="top", horizontal="left" if left else None
        )
        if kind in NUMBER_FORMATS:
            cell.number_format = NUMBER_FORMATS[kind]
        if kind == "mono":
            cell.font = font(name=MONO_FONT, size=10)
        elif kind in ("header", "input_header"):
            fill = INPUT_HEADER_FILL if kind == "input_header" else HEADER_FILL
            cell.font = font(bold=True)
            cell.fill = PatternFill("solid", fgColor=fill)
            cell.border = Border(bottom=Side(style="thin", color="808080"))
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        elif kind == "title":
            cell.font = font(bold=True, size=13)
        elif kind == "label":
            cell.font = font(bold=True)
        if state in _FILLS:
            background, text = _FILLS[state]
            cell.fill = PatternFill("solid", fgColor=background)
            cell.font = font(color=text, bold=kind in ("status", "label"))
        return int(cell.style_id)


class _Holder:
    """Stands in for a worksheet: openpyxl finds the workbook's style lists through
    ``cell.parent.parent``."""

    def __init__(self, book: Any) -> None:
        self.parent = book
