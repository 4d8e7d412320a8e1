"""The result table: one row per cell in cell order, as a DataFrame and as files.

Rows are read from the store in batches and converted through one Arrow schema, so the
DataFrame and every exported file agree on column names and types, and an export streams: a
100,000-cell run is written batch by batch, never held whole in memory.

Columns: ``run_id, cell_id, prompt, <each case column and var>, <each param>, repeat, messages,
response, finish_reason, status, error_type, http_status, error, attempts, prompt_tokens,
completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_s, resolved_model,
request_id, cached``. A var or param whose values are not all of one scalar type is JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .store import RunInfo, Store, dumps

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

FORMATS = ("parquet", "csv", "xlsx", "jsonl")
DEFAULT_FORMATS = ("parquet", "csv")

_BEFORE = (("run_id", "str"), ("cell_id", "str"), ("prompt", "str"))
_AFTER = (
    ("repeat", "int"), ("messages", "str"), ("response", "str"), ("finish_reason", "str"),
    ("status", "str"), ("error_type", "str"), ("http_status", "int"), ("error", "str"),
    ("attempts", "int"), ("prompt_tokens", "int"), ("completion_tokens", "int"),
    ("cached_tokens", "int"), ("reasoning_tokens", "int"), ("cost_usd", "float"),
    ("latency_s", "float"), ("resolved_model", "str"), ("request_id", "str"), ("cached", "bool"),
)  # fmt: skip


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


def columns(run: RunInfo) -> list[tuple[str, str]]:
    """Every column of a run's table with its kind (str, int, float, bool, json)."""
    return [*_BEFORE, *run.columns, *_AFTER]


def schema(run: RunInfo) -> pa.Schema:
    """The Arrow schema of a run's table."""
    import pyarrow as pa

    types = {"str": pa.string(), "json": pa.string(), "int": pa.int64(),
             "float": pa.float64(), "bool": pa.bool_()}  # fmt: skip
    return pa.schema([(name, types[kind]) for name, kind in columns(run)])


def batches(store: Store, run: RunInfo, size: int = 5000) -> Iterator[pa.Table]:
    """The run's table in cell order, ``size`` rows at a time, as Arrow tables."""
    import pyarrow as pa

    table_schema = schema(run)
    user_columns = run.columns
    for rows in store.result_rows(run.run_id, size):
        records = []
        for row in rows:
            record = dict(row)
            values = {
                **json.loads(record.pop("params_json")),
                **json.loads(record.pop("vars_json")),
            }
            for name, kind in user_columns:
                value = values.get(name)
                record[name] = dumps(value) if kind == "json" and value is not None else value
            record["messages"] = dumps(json.loads(record.pop("request_json"))["messages"])
            record["cached"] = bool(record["cached"])
            record.pop("idx")
            records.append(record)
        yield pa.Table.from_pylist(records, schema=table_schema)


def to_dataframe(tables: Iterator[pa.Table], run: RunInfo) -> pd.DataFrame:
    """One DataFrame from a run's Arrow batches (nullable integers stay integers)."""
    import pandas as pd
    import pyarrow as pa

    parts = list(tables)
    table = pa.concat_tables(parts) if parts else schema(run).empty_table()
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def load_run(store: Store, run: RunInfo) -> pd.DataFrame:
    """A run's whole table as a DataFrame."""
    return to_dataframe(batches(store, run), run)


def resolve_run(store: Store, run_id: str | None, experiment: str | None = None) -> RunInfo:
    """A run by id (or unique prefix), or the newest run (of ``experiment``)."""
    if run_id is None:
        runs = store.runs(experiment)
        if not runs:
            raise UsageError(
                f"no runs in {store.path}" + (f" for {experiment}" if experiment else "")
            )
        return runs[0]
    run = store.run(run_id)
    if run is None:
        matches = [r for r in store.runs() if r.run_id.startswith(run_id)]
        if len(matches) != 1:
            raise UsageError(
                f"no run {run_id!r} in {store.path}" if not matches else f"{run_id!r} is ambiguous",
            )
        run = matches[0]
    return run


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
