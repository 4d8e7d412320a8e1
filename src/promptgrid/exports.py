"""Files of a run's table: parquet, CSV, XLSX, JSONL, written batch by batch.

Each file is written under a temporary name and renamed into place, so a reader never sees half
a file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .store import RunInfo, Store
from .table import batches, columns, schema

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("parquet", "csv", "xlsx", "jsonl")
DEFAULT_FORMATS = ("parquet", "csv")


def parse_formats(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"parquet,csv"`` -> ``("parquet", "csv")``; rejects unknown formats."""
    if text is None:
        return DEFAULT_FORMATS
    items = text.split(",") if isinstance(text, str) else list(text)
    out = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in items if f.strip()))
    unknown = [f for f in out if f not in FORMATS]
    if unknown or not out:
        raise UsageError(f"unknown format {unknown or text!r}: choose from {', '.join(FORMATS)}")
    return out


def export(
    store: Store,
    run: RunInfo,
    target: Path,
    formats: Sequence[str],
    keep: list[pa.Table] | None = None,
) -> list[Path]:
    """Write the run's table in each format, streaming batch by batch.

    ``target`` is a directory (files named ``results.<format>``) or, with one format, a file.
    ``keep``, a list, also receives the batches, so a caller that wants the DataFrame too does
    not read the store twice.
    """
    paths = _targets(target, formats) if formats else {}
    if not paths and keep is None:
        return []
    with ExitStack() as stack:
        writers = {fmt: stack.enter_context(_Writer(fmt, path, run)) for fmt, path in paths.items()}
        for table in batches(store, run):
            for writer in writers.values():
                writer.write(table)
            if keep is not None:
                keep.append(table)
    return list(paths.values())


def _targets(target: Path, formats: Sequence[str]) -> dict[str, Path]:
    if target.suffix.lstrip(".") in FORMATS:
        if len(formats) > 1 or target.suffix.lstrip(".") != formats[0]:
            raise UsageError(f"{target} names one file; its suffix must match --format {formats}")
        target.parent.mkdir(parents=True, exist_ok=True)
        return {formats[0]: target}
    target.mkdir(parents=True, exist_ok=True)
    return {fmt: target / f"results.{fmt}" for fmt in formats}


class _Writer:
    """Streams Arrow batches into one file of one format."""

    def __init__(self, fmt: str, path: Path, run: RunInfo) -> None:
        self.fmt, self.path, self.run = fmt, path, run
        self._impl: Any = None

    def __enter__(self) -> _Writer:
        tmp = self.path.with_name(self.path.name + ".tmp")
        self._tmp = tmp
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            self._impl = pq.ParquetWriter(tmp, schema(self.run))
        elif self.fmt == "csv":
            import pyarrow.csv as pcsv

            self._impl = pcsv.CSVWriter(tmp, schema(self.run))
        elif self.fmt == "jsonl":
            self._impl = tmp.open("w", encoding="utf-8")
        else:
            from openpyxl import Workbook

            self._impl = Workbook(write_only=True)
            self._sheet = self._impl.create_sheet("results")
            self._sheet.append([name for name, _ in columns(self.run)])
        return self

    def write(self, table: pa.Table) -> None:
        if self.fmt in ("parquet", "csv"):
            self._impl.write_table(table)
        elif self.fmt == "jsonl":
            for record in table.to_pylist():
                self._impl.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            for record in table.to_pylist():
                self._sheet.append([_cell(v) for v in record.values()])

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.fmt == "xlsx":
            if exc_type is None:
                self._impl.save(self._tmp)
        else:
            self._impl.close()
        if exc_type is None:
            self._tmp.replace(self.path)  # a reader never sees half a file
        else:
            self._tmp.unlink(missing_ok=True)


def _cell(value: Any) -> Any:
    # Excel cells hold at most 32,767 characters; longer text is cut, not rejected.
    if isinstance(value, str) and len(value) > 32_767:
        return value[:32_760] + " [...]"
    return value
