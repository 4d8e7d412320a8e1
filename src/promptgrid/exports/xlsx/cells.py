"""Cell values and cell styles shared by the sheets.

Every text is written as a text cell, so a value such as ``=1+1``, ``=HYPERLINK(...)`` or
``#N/A`` stays the text it is instead of becoming a live formula or an error value. Characters
an XLSX file cannot hold (the control characters ``\\x00``-``\\x08``, ``\\x0b``, ``\\x0c``,
``\\x0e``-``\\x1f``, and U+FFFE, U+FFFF and lone surrogates, which XML forbids) are shown as
visible escapes: ESC becomes the four characters ``\\x1b``. A cell holds at most 32,767
characters (UTF-16 units, as Excel counts them): longer text is cut and ends with `` [...]``.
NaN is an empty cell; infinities are the texts ``inf`` and ``-inf``. A text that starts with
``<r>`` and ends with ``</r>`` gets a trailing space: xlsxwriter takes such a string for its own
rich-text XML and writes it into the sheet unescaped, where an answer shaped so could close its
cell and open a formula. Parquet, CSV and JSONL keep every text exactly.

Styles are xlsxwriter formats, each added to the workbook once and then reused, so a row of 25
cells adds no format.
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
#: Excel's bad, neutral and good styles: a failed call, a cell some of whose calls failed, a
#: score that failed or passed.
_FILLS = {"error": ("FFC7CE", "9C0006"), "mixed": ("FFEB9C", "7F4F00"),
          "fail": ("FFC7CE", "9C0006"), "pass": ("C6EFCE", "006100")}  # fmt: skip
HEADER_FILL = "D9D9D9"
INPUT_HEADER_FILL = "DDEBF7"
BODY_FONT = "Calibri"  # Excel's default; LibreOffice substitutes metric-compatible Carlito
MONO_FONT = "Courier New"  # LibreOffice substitutes the metric-compatible Liberation Mono


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cell_text(value: str) -> str:
    """``value`` as an XLSX cell can hold it: illegal characters escaped, cut to the limit."""
    if _ILLEGAL.search(value):
        value = _ILLEGAL.sub(_escape, value)
    if value.startswith("<r>") and value.endswith("</r>"):
        value += " "  # else xlsxwriter writes it as rich-text XML, unescaped (see above)
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
    """The workbook's cell formats, added to the xlsxwriter ``book`` on first use, by name.

    A style is ``kind`` (``text``, ``wrap``, ``mono``, a number kind of ``NUMBER_FORMATS``,
    ``header``, ``input_header``, ``title``, ``label``) in a ``state``: ``ok``, ``error``
    (red: a failed call), ``mixed`` (amber: some of the calls in a cell failed), ``pass`` or
    ``fail`` (green or red: a score). Kind ``mark`` is a font only, for a score's mark in a
    :class:`~.sheet.Rich` text: green in ``pass``, red in ``fail``.
    """

    def __init__(self, book: Any) -> None:
        self._book = book
        self._formats: dict[tuple[str, str, bool], Any] = {}

    def get(self, kind: str, state: str = "ok", *, left: bool = False) -> Any:
        """The format of ``kind`` in ``state`` (``left``: numbers aligned left, as labels and
        settings read)."""
        key = (kind, state, left)
        found = self._formats.get(key)
        if found is None:
            found = self._formats[key] = self._book.add_format(_properties(kind, state, left))
        return found


def _properties(kind: str, state: str, left: bool) -> dict[str, Any]:
    """xlsxwriter's format properties of a style."""
    if kind == "mark":
        color = _FILLS[state][1] if state in _FILLS else "656D76"
        return {"font_name": BODY_FONT, "font_size": 11, "bold": state in _FILLS,
                "font_color": f"#{color}"}  # fmt: skip
    wrap = kind in ("wrap", "header", "input_header", "label")
    out: dict[str, Any] = {"font_name": BODY_FONT, "font_size": 11, "valign": "top",
                           "text_wrap": wrap}  # fmt: skip
    if left:
        out["align"] = "left"
    if kind in NUMBER_FORMATS:
        out["num_format"] = NUMBER_FORMATS[kind]
    if kind == "mono":
        out.update(font_name=MONO_FONT, font_size=10)
    elif kind in ("header", "input_header"):
        fill = INPUT_HEADER_FILL if kind == "input_header" else HEADER_FILL
        out.update(bold=True, pattern=1, bg_color=f"#{fill}", bottom=1,
                   bottom_color="#808080", valign="vcenter")  # fmt: skip
    elif kind == "title":
        out.update(bold=True, font_size=13)
    elif kind == "label":
        out["bold"] = True
    if state in _FILLS:
        background, text = _FILLS[state]
        out.update(pattern=1, bg_color=f"#{background}", font_color=f"#{text}")
        if kind == "status" or state in ("pass", "fail"):
            out["bold"] = True
    return out
