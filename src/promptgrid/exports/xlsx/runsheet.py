"""The ``run`` sheet: what the run was and what it came to.

The run's id, experiment, status and times; totals (calls, errors, cached, tokens, cost,
latency); the settings the run recorded (provider, base URL, limits, formats, cache); the
promptgrid version that wrote the file; and the experiment file as the run stored it, one line a
row.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ...store import RunInfo
from ...version import __version__
from ..totals import completeness, totals
from .cells import Styles, cell_value
from .sheet import Sheet


def write_run(sheet: Sheet, run: RunInfo, df: pd.DataFrame, styles: Styles) -> None:
    """Fill ``sheet`` with the run's settings, totals and experiment file."""
    sheet.set_widths([24, 110])
    sheet.fit_to_width()
    title, label, text = styles.get("title"), styles.get("label"), styles.get("wrap")
    spec = run.spec

    def section(name: str) -> None:
        sheet.append([])
        sheet.append([(name, title)], 22.0)

    sheet.append([("Run " + run.run_id, title)], 22.0)
    about = [
        ("experiment", run.experiment), ("description", spec.get("description")),
        ("results", completeness(len(df), run.total)), ("created", run.created_at),
        ("experiment file", run.source), ("written by", f"promptgrid {__version__}"),
    ]  # fmt: skip
    for name, value in about:
        if value is not None:
            sheet.append([(name, label), (cell_value(str(value)), text)])
    section("Totals")
    for name, value, kind in totals(df, run.total):
        sheet.append([(name, label), (cell_value(value), styles.get(kind, left=True))])
    section("Settings")
    for name, value in sorted(run.options.items()):
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        sheet.append([(name, label), (cell_value(shown), text)])
    section("Experiment (as the run stored it)")
    mono = styles.get("mono")
    for line in _yaml(spec).splitlines():
        sheet.append([None, (cell_value(line), mono)])


def _yaml(spec: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)
