"""The ``results`` sheet: one row per call, streamed batch by batch.

Columns, left to right: the inputs that tell rows apart (prompt, case columns, vars and params
that vary, ``repeat`` with several samples), ``response``, the scores (pass in green, fail in
red; a judge's reason beside its verdict), the error columns, tokens, latency, cost, the other
result columns, the ids, then what is the same in every row (fixed params, vars with one value)
and the rendered ``messages`` last. The header and the inputs stay in view (frozen panes);
every column has a filter. Column widths are fitted to the first batch's values and capped,
long text wraps, and a row grows to show up to ``MAX_LINES`` lines of it. An error row is red
from end to end. Printed, the sheet is the inputs, the answer, the scores and the error
columns, one page wide, the header and the inputs on every page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...store import RunInfo
from ...table import columns
from ..layout import run_layout
from .cells import Styles, cell_text, cell_value
from .sheet import Sheet

if TYPE_CHECKING:
    import pyarrow as pa

#: A row shows at most this many lines of its longest text (the cell holds all of it).
MAX_LINES = 8
_RESULTS_FIRST = ("response", "status", "error_type", "http_status", "error",
                  "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
                  "latency_s", "cost_usd", "finish_reason", "attempts", "cached",
                  "resolved_model", "run_id", "cell_id", "request_id", "batch_id")  # fmt: skip
#: (style kind, width cap) of the result columns; inputs and fixed columns by their own kind.
_KINDS: dict[str, tuple[str, float]] = {
    "response": ("wrap", 60), "status": ("status", 8), "error_type": ("text", 18),
    "http_status": ("int", 7), "error": ("wrap", 40), "prompt_tokens": ("tokens", 9),
    "completion_tokens": ("tokens", 11), "cached_tokens": ("tokens", 9),
    "reasoning_tokens": ("tokens", 10), "latency_s": ("latency", 10), "cost_usd": ("cost", 12),
    "finish_reason": ("text", 9), "attempts": ("int", 8), "cached": ("bool", 8),
    "resolved_model": ("text", 20), "run_id": ("text", 24), "cell_id": ("text", 14),
    "request_id": ("text", 16), "batch_id": ("text", 16), "messages": ("mono", 50),
    "repeat": ("int", 7),
}  # fmt: skip
_INPUT_CAP = 30.0
#: The score columns not printed beside the answer (they explain, they do not score).
_SCORE_EXTRAS = ("score_errors", "judge_tokens", "judge_cost_usd")
#: The last column printed (the answer, scores and errors fit one page wide).
_LAST_PRINTED = "error"
_FLOORS = {"response": 30.0, "error": 20.0}  # the columns read most start readable


def ordered_columns(run: RunInfo) -> tuple[list[str], int]:
    """The results sheet's column order, and how many leading columns are inputs."""
    layout = run_layout(run)
    inputs = list(layout.inputs)
    names = [name for name, _ in columns(run)]
    scores = [name for name, _ in run.score_columns if name not in _SCORE_EXTRAS]
    rest = [n for n in _RESULTS_FIRST if n in names]
    rest[1:1] = scores  # beside the answer
    tail = [n for n in (*layout.fixed, "repeat") if n not in inputs] + ["messages"]
    seen = {*inputs, *rest, *tail}
    extra = [n for n in names if n not in seen]  # columns added later land before the tail
    return [*inputs, *rest, *extra, *tail], len(inputs)


class ResultsSheet:
    """Writes the ``results`` sheet of ``run`` into ``sheet``."""

    def __init__(self, sheet: Sheet, run: RunInfo, styles: Styles) -> None:
        self._sheet = sheet
        self._styles = styles
        self._order, self._inputs = ordered_columns(run)
        kinds = dict(columns(run))
        self._kinds = [self._kind(name, kinds[name], i) for i, name in enumerate(self._order)]
        self._wrapped = [i for i, (kind, _) in enumerate(self._kinds) if kind == "wrap"]
        inputs = self._inputs  # input numbers read as labels: aligned left
        self._ok = [styles.get(kind, left=i < inputs) for i, (kind, _) in enumerate(self._kinds)]
        self._error = [styles.get(kind, "error", left=i < inputs)
                       for i, (kind, _) in enumerate(self._kinds)]  # fmt: skip
        self._widths: list[float] = []
        self._status = self._order.index("status")
        # pass/fail scores: green or red by their value (unless the row is an error's)
        self._verdicts = [i for i, name in enumerate(self._order)
                          if name.startswith("score_") and kinds[name] == "bool"]  # fmt: skip
        self._passed = styles.get("bool", "pass")
        self._failed = styles.get("bool", "fail")

    def _kind(self, name: str, kind: str, index: int) -> tuple[str, float]:
        if name in _KINDS:
            return _KINDS[name]
        if name.startswith("score_") and name.endswith(".reason"):
            return "wrap", 40
        number = {"int": "int", "float": "float", "bool": "bool"}.get(kind)
        if number:
            return number, 12
        return ("wrap" if index < self._inputs else "text"), _INPUT_CAP

    def write(self, table: pa.Table) -> None:
        """Append one row per row of the batch (the first batch also fixes the widths)."""
        data = [table.column(name).to_pylist() for name in self._order]
        if not self._widths:
            self._start(data)
        sheet, widths, wrapped = self._sheet, self._widths, self._wrapped
        ok, error, status = self._ok, self._error, self._status
        verdicts, passed, failed_score = self._verdicts, self._passed, self._failed
        for row in zip(*data, strict=True):
            failed = row[status] != "ok"
            values = [cell_value(v) for v in row]
            lines = max((_lines(values[i], widths[i]) for i in wrapped), default=1)
            height = sheet.lines_height(min(lines, MAX_LINES))
            styles = error if failed else ok
            if not failed and verdicts:
                styles = list(ok)
                for i in verdicts:
                    if values[i] is not None:
                        styles[i] = passed if values[i] else failed_score
            # an error row's empty cells are red too; an answer's show nothing
            sheet.append(zip(values, styles, strict=True), height, blanks=failed)

    def _start(self, data: Sequence[list[Any]]) -> None:
        header = [self._styles.get("input_header" if i < self._inputs else "header")
                  for i in range(len(self._order))]  # fmt: skip
        caps = [cap for _, cap in self._kinds]
        named = zip(self._order, data, caps, strict=True)
        self._widths = [max(_fit(name, values, cap), _FLOORS.get(name, 0.0))
                        for name, values, cap in named]  # fmt: skip
        sheet = self._sheet
        sheet.set_widths(self._widths)
        sheet.freeze(1, self._inputs)
        sheet.print_titles(1, self._inputs)
        names = [cell_text(name) for name in self._order]  # a cases file names its columns
        sheet.append(zip(names, header, strict=True), 30.0)

    def close(self) -> None:
        """Put a filter on every column (and write the header if no row came)."""
        if not self._widths:
            self._start([[] for _ in self._order])
        self._sheet.filter(0, max(self._sheet.rows_written, 2) - 1, len(self._order))
        self._sheet.print_columns(self._order.index(_LAST_PRINTED) + 1)


def _fit(name: str, values: list[Any], cap: float) -> float:
    """A width that shows the header and most values, at most ``cap`` characters."""
    sample = [len(_longest_line(str(v))) for v in values[:500] if v is not None]
    sample.sort()
    typical = sample[int(len(sample) * 0.9)] if sample else 0
    if values and isinstance(next((v for v in values if v is not None), None), float):
        typical = max(typical, 8)
    return float(min(max(len(name) + 3, typical + 2, 6), max(cap, len(name) + 3)))


def _longest_line(text: str) -> str:
    return max(text.split("\n"), key=len) if "\n" in text else text


def _lines(value: Any, width: float) -> int:
    """How many lines ``value`` takes wrapped in a column ``width`` characters wide."""
    if not isinstance(value, str) or not value:
        return 1
    per_line = max(int(width) - 1, 1)
    if "\n" not in value:
        return math.ceil(len(value) / per_line)
    return sum(max(math.ceil(len(line) / per_line), 1) for line in value.split("\n"))
