"""The HTML report: one self-contained file to open in any browser, offline, or to share.

The page (``template.html``, ``report.css``, ``report.js``, package data files read with
``importlib.resources``) is inlined with the data (:mod:`.data`) as JSON in a
``<script type="application/json">`` element; nothing is fetched when the file is viewed. The
script is plain JavaScript without a framework: a summary that opens on the verdict
(``summary.js``: forest plots, cost against quality, a heatmap, the paired comparisons),
filters on every input and on each score and tool call, full-text search, show/hide columns,
side-by-side and long views with each answer's scores and tool calls, Markdown, a word diff
between the answers of a row, charts and the run's settings. Rows are paged, so 20,000 calls
stay responsive. A print stylesheet prints the view shown, without the controls.

``ReportWriter`` is the ``html`` format of ``export`` (``report.html`` in a run's folder);
``write_report`` serves ``promptgrid.report`` and ``promptgrid report``.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...store import RunInfo, translate
from .._atomic import temp_path
from .data import build, to_json

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["ReportWriter", "page", "write_report"]

#: Columns the report reads (``messages`` and the ids stay out of the file).
_DROP = ("messages", "cell_id", "request_id", "batch_id", "finish_reason", "http_status",
         "attempts", "cached_tokens", "reasoning_tokens", "resolved_model")  # fmt: skip


def page(data: Mapping[str, Any]) -> str:
    """The report's HTML with ``data`` embedded."""
    files = resources.files(__package__)
    template = (files / "template.html").read_text(encoding="utf-8")
    parts = {
        "/*CSS*/": (files / "report.css").read_text(encoding="utf-8"),
        # summary.js only declares functions; report.js draws the page; race.js (after it: it
        # reads report.js's constants) shows the race tab of a raced run. One script, so the
        # functions of all three are hoisted.
        "/*JS*/": "\n".join(
            (files / name).read_text(encoding="utf-8")
            for name in ("summary.js", "report.js", "race.js")
        ),
        "/*DATA*/": to_json(data),
        "<!--TITLE-->": html.escape(str(data["title"])),
    }
    for marker, text in parts.items():
        before, found, after = template.partition(marker)
        assert found, marker
        template = before + text + after
    return template


def write_report(
    frames: Sequence[pd.DataFrame],
    path: Path,
    runs: Mapping[str, RunInfo] | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Write the report of ``frames`` (one table, or several to align run against run) to
    ``path``, atomically; ``runs`` gives each run's settings (by run id) where known. A folder
    that cannot be written (read-only, full) raises the store error an export would."""
    text = page(build(frames, runs or {}, title=title))
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise translate(exc, path, "writing the report") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


class ReportWriter:
    """The ``html`` export: keeps the batches' readable columns, writes the page at the end."""

    def __init__(self, path: Path, run: RunInfo) -> None:
        self._path = path
        self._run = run
        self._kept: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        """Keep one batch (without the messages and ids)."""
        self._kept.append(table.drop_columns([c for c in _DROP if c in table.column_names]))

    def close(self) -> None:
        """Write the page: the file is complete."""
        from ...table import schema, to_dataframe

        parts = self._kept or [schema(self._run).empty_table()]
        frame = to_dataframe(iter(parts), self._run)
        self._kept = []
        text = page(build([frame], {self._run.run_id: self._run}))
        self._path.write_text(text, encoding="utf-8")

    def abort(self) -> None:
        """Drop what was kept (the file is discarded)."""
        self._kept = []
