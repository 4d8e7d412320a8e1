"""The ``summary`` sheet's race block, for a raced run: the winner (or the ties), the calls
saved against the full grid, and one row per variant — its standing, and for a dropped one
when, against whom, and that rival's lead with its anytime-valid interval.

Read from the race's record (``race.standings``), like ``promptgrid show`` and the report, so
the three cannot disagree. Written first on the sheet: for a raced run, who won comes before
the totals per group (which cover unequal numbers of cases, by design).
"""

from __future__ import annotations

from typing import Any

from ...race.standings import Standings
from ...store.races import RaceRecord
from .cells import Styles, cell_value
from .sheet import Sheet

__all__ = ["write_race"]

#: The table's columns: (column of ``Standings.table``, header, kind).
COLUMNS = (
    ("rank", "rank", "int"), ("status", "status", "text"), ("mean", "mean", "float"),
    ("cases", "cases", "int"), ("calls", "calls", "int"),
    ("dropped_round", "dropped in round", "int"), ("after_blocks", "after blocks", "int"),
    ("against", "by", "text"), ("lead", "its lead", "float"),
    ("lead_low", "lead, low", "float"), ("lead_high", "lead, high", "float"),
)  # fmt: skip


def write_race(sheet: Sheet, record: RaceRecord, styles: Styles) -> None:
    """Append the race block to ``sheet``."""
    standings = Standings(record)
    title, label, text = styles.get("title"), styles.get("label"), styles.get("wrap")
    sheet.append([("Race", title)], 22.0)
    share = record.calls / record.grid_calls if record.grid_calls else 1.0
    facts = [
        standings.named(),
        ("stopped", standings.why()),
        ("calls", f"{record.calls:,} of the full grid's {record.grid_calls:,} ({share:.1%})"),
        ("calls saved", record.saved),
        ("settings", standings.summary()[0]),
    ]
    for name, value in facts:
        style = text if isinstance(value, str) else styles.get("int", left=True)
        sheet.append([(name, label), (cell_value(value), style)])
    sheet.append([])
    header = styles.get("header")
    table = standings.table
    factor = record.factor
    heads = [(cell_value(factor), header), *((h, header) for _, h, _ in COLUMNS)]
    sheet.append(heads, 30.0)
    for row in table.to_dict("records"):
        cells = [(cell_value(str(row[factor])), label)]
        cells += [(cell_value(_plain(row[key])), styles.get(kind)) for key, _, kind in COLUMNS]
        sheet.append(cells)
    sheet.append([])


def _plain(value: Any) -> Any:
    """A missing value (None, NaN, NA) as an empty cell; numpy scalars as Python's."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
