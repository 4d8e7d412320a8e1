"""The result table: one row per cell in cell order, as Arrow batches and as a DataFrame.

Rows are read from the store in batches and converted through one Arrow schema (built from
``columns``), so the DataFrame and every exported file agree on column names and types, and
an export streams: a 100,000-cell run is written batch by batch, never held whole in memory.
A var or param whose values are not all of one scalar type is JSON text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .columns import AFTER, BEFORE
from .errors import UsageError
from .store import RunInfo, Store, dumps

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


#: One row as a JSON line (an encoder built once: ``json.dumps`` with options builds one a call).
_line = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def columns(run: RunInfo) -> list[tuple[str, str]]:
    """Every column of a run's table with its kind (str, int, float, bool, json)."""
    return [*BEFORE, *run.columns, *AFTER]


def schema(run: RunInfo) -> pa.Schema:
    """The Arrow schema of a run's table."""
    import pyarrow as pa

    types = {"str": pa.string(), "json": pa.string(), "int": pa.int64(),
             "float": pa.float64(), "bool": pa.bool_()}  # fmt: skip
    return pa.schema([(name, types[kind]) for name, kind in columns(run)])


def batches(store: Store, run: RunInfo, size: int = 5000) -> Iterator[pa.Table]:
    """The run's table in cell order, ``size`` rows at a time, as Arrow tables.

    Rows become Arrow through Arrow's JSON reader, not ``pa.Table.from_pylist``: building
    arrays from Python objects makes pyarrow import pandas (~0.25 s), which a command that only
    writes files does not need; the JSON reader is as fast and leaves pandas alone. A line
    leaves its nulls out (most result columns are null in most rows): the reader fills them.
    """
    import pyarrow.json as pa_json

    table_schema = schema(run)
    parse = pa_json.ParseOptions(explicit_schema=table_schema)
    user_columns = run.columns
    for rows in store.result_rows(run.run_id, size):
        lines = []
        names = rows[0].keys()
        for row in rows:
            record = {k: v for k, v in zip(names, row, strict=True) if v is not None}
            values = {
                **json.loads(record.pop("params_json")),
                **json.loads(record.pop("vars_json")),
            }
            for name, kind in user_columns:
                value = values.get(name)
                if value is not None:
                    record[name] = dumps(value) if kind == "json" else value
            record["cached"] = bool(record["cached"])
            record.pop("idx")
            lines.append(_line(record))
        data = "\n".join(lines).encode()
        read = pa_json.ReadOptions(block_size=max(len(data) + 1, 1 << 20))  # a row never splits
        yield pa_json.read_json(io.BytesIO(data), read_options=read, parse_options=parse)


def to_dataframe(tables: Iterator[pa.Table], run: RunInfo) -> pd.DataFrame:
    """One DataFrame from a run's Arrow batches (nullable integers stay integers)."""
    import pandas as pd
    import pyarrow as pa

    parts = list(tables)
    table = pa.concat_tables(parts) if parts else schema(run).empty_table()
    frame: pd.DataFrame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return frame


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
