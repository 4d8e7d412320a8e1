"""The terminal: what may reach it (:func:`visible`), and tables side by side, fitted to the
width, answers wrapped (rich).

Everything printed from data — answers, datasets, a store's values, a server's messages — goes
through :func:`visible` first, the one rule for the terminal: control characters and the escape
sequences they start (OSC 52 writes the clipboard, OSC 8 makes links, ``ESC[2J`` clears the
screen), C1 controls, carriage returns and bidirectional overrides are shown as escapes
(``\\x1b``), never obeyed. Tables hand rich ``Text`` only, so markup in data (``[bold]``) is
printed as written.

A table's labels (its index: the vars of a compare table, the inputs of a run-vs-run table)
come first and keep their width; short value columns keep theirs and long ones (answers)
share the rest, wrapped. When the columns cannot each have their width, or ``MIN_WIDTH``
characters for a long one, they are printed in groups, one table per group, each repeating
the labels — so a wide grid stays readable instead of being squeezed to a few characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

__all__ = ["MIN_WIDTH", "print_frame", "visible"]

#: Shown as escapes: C0 controls but tab and line feed, DEL, C1 controls, the bidirectional
#: marks, embeddings, overrides and isolates (they reorder what is shown), and lone surrogates
#: (a terminal cannot be written them).
_SHOWN = {
    **{c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))},
    **{c: f"\\u{c:04x}" for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                    *range(0x2066, 0x206A), *range(0xD800, 0xE000))},
}  # fmt: skip


def visible(text: str) -> str:
    """``text`` as it may be printed: a ``\\r\\n`` line break is a line break; every other
    character a terminal would act on is shown as its escape (ESC as ``\\x1b``)."""
    return text.replace("\r\n", "\n").translate(_SHOWN)


#: The narrowest a value column gets before the table is split into groups of columns.
MIN_WIDTH = 24
_LABEL_CAP = 24  # a label column takes at most this much of the width


def print_frame(
    frame: pd.DataFrame,
    console: Console,
    *,
    title: str | None = None,
    index: bool = True,
    max_rows: int | None = None,
) -> None:
    """Print ``frame`` on ``console``: labels (the index, if ``index``) then the values, each
    column wrapped to fit ``console.width``; at most ``max_rows`` rows (with a note)."""
    from rich.table import Table
    from rich.text import Text

    rows = frame if max_rows is None else frame.iloc[:max_rows]
    labels = _labels(rows) if index else []
    label_names = [_text(n) for n in frame.index.names] if index else []
    headers = [_header(c, frame.columns.names) for c in frame.columns]
    label_widths = [
        min(_LABEL_CAP, max([len(label_names[k]), *(len(r[k]) for r in labels)], default=1))
        for k in range(len(label_names))
    ]
    cells = [[_text(v) for v in row] for row in rows.itertuples(index=False, name=None)]
    longest = [max([_width(headers[j]), *(_width(r[j]) for r in cells)], default=1)
               for j in range(len(headers))]  # fmt: skip
    # borders and padding: 3 characters a column, plus 1
    room = console.width - sum(label_widths) - 3 * len(label_widths) - 1
    groups = _groups([min(n, MIN_WIDTH) + 3 for n in longest], room)
    for n, group in enumerate(groups):
        heading = title
        if len(groups) > 1:
            span = f"columns {group[0] + 1}–{group[-1] + 1} of {len(headers)}"
            heading = f"{title} ({span})" if title else span
        caption = Text(visible(heading)) if heading else None
        table = Table(title=caption, show_lines=True, expand=False, title_justify="left")
        for name, width in zip(label_names, label_widths, strict=True):
            table.add_column(
                Text(name), style="bold", overflow="fold", max_width=width, no_wrap=False
            )
        for j in group:
            header = Text(headers[j])
            if longest[j] <= MIN_WIDTH:  # short values keep their width; long ones share the rest
                table.add_column(header, no_wrap=True, min_width=longest[j])
            else:
                table.add_column(header, overflow="fold", ratio=1, min_width=MIN_WIDTH)
        for r, values in enumerate(cells):
            row_labels = [Text(v) for v in labels[r]] if labels else []
            table.add_row(*row_labels, *(Text(values[j]) for j in group))
        console.print(table)
        if n < len(groups) - 1:
            console.print()
    if max_rows is not None and len(frame) > max_rows:
        console.print(f"... {len(frame) - max_rows:,} more rows")


def _groups(widths: list[int], room: int) -> list[list[int]]:
    """Consecutive columns whose least widths fit in ``room`` (at least one per group)."""
    groups: list[list[int]] = [[]]
    used = 0
    for j, width in enumerate(widths):
        if groups[-1] and used + width > room:
            groups.append([])
            used = 0
        groups[-1].append(j)
        used += width
    return groups


def _width(text: str) -> int:
    """The longest line of ``text``."""
    return max(map(len, text.split("\n"))) if "\n" in text else len(text)


def _labels(frame: pd.DataFrame) -> list[list[str]]:
    return [[_text(v) for v in (k if isinstance(k, tuple) else (k,))] for k in frame.index]


def _header(column: Any, names: Sequence[Any]) -> str:
    """A column's label: each level as ``name = value`` (just the value for prompt and run)."""
    parts = column if isinstance(column, tuple) else (column,)
    lines = []
    for name, value in zip(names, parts, strict=False):
        bare = name is None or name in ("prompt", "run_id")
        lines.append(_text(value) if bare else f"{_text(name)} = {_text(value)}")
    return "\n".join(lines) or _text(column)


def _text(value: Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, (str, list, dict, tuple)) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return "≠" if value else ""
    return visible(str(value))
