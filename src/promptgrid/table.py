"""The result table: one row per cell in cell order, as Arrow batches and as a DataFrame.

Rows are read from the store in batches and converted through one Arrow schema (built from
``columns``), so the DataFrame and every exported file agree on column names and types, and
an export streams: a 100,000-cell run is written batch by batch, never held whole in memory.
A var or param whose values are not all of one scalar type is JSON text.

A store promptgrid wrote holds only values of their column's kind. One another program changed
(or damaged) may not: a value that does not fit its column (text where a count belongs, a
count beyond 64 bits, an infinity) is read as null, with a
:class:`~promptgrid.errors.PromptgridWarning` naming the columns; reading never fails on it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import untrusted
from .columns import AFTER, BEFORE, score_columns
from .errors import PromptgridWarning, UsageError
from .store import RunInfo, Store, dumps
from .store import scores as scorestore

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


#: One row as a JSON line (an encoder built once: ``json.dumps`` with options builds one a call).
_line = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def columns(run: RunInfo) -> list[tuple[str, str]]:
    """Every column of a run's table with its kind (str, int, float, bool, json); the score
    columns are those :func:`with_score_columns` found."""
    return [*BEFORE, *run.columns, *AFTER, *run.score_columns]


def with_score_columns(store: Store, run: RunInfo) -> RunInfo:
    """The run with its score columns (from its ``scores:``, and what its ``python:`` scorers
    stored): call before building its table."""
    scores = run.spec.get("scores") or {}
    if not scores:
        return run
    found = score_columns(scores, lambda name: scorestore.score_outputs(store, run.run_id, name))
    return dataclasses.replace(run, score_columns=tuple(found))


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
    user_columns = run.columns
    kinds = dict(run.score_columns)
    for rows in store.result_rows(run.run_id, size):
        scored = _scores(store, run, rows[0]["idx"], rows[-1]["idx"], kinds) if kinds else None
        records = []
        names = rows[0].keys()
        # Rows of one block share their vars' text, rows of one combination their params':
        # each distinct text is parsed once (read only: merged into a new dict below).
        parsed: dict[str, dict[str, Any]] = {}
        for row in rows:
            record = {k: v for k, v in zip(names, row, strict=True) if v is not None}
            params, vars_ = record.pop("params_json"), record.pop("vars_json")
            if (params_values := parsed.get(params)) is None:
                params_values = parsed[params] = _inputs(params)
            if (var_values := parsed.get(vars_)) is None:
                var_values = parsed[vars_] = _inputs(vars_)
            values = {**params_values, **var_values}
            for name, kind in user_columns:
                value = values.get(name)
                if value is not None:
                    record[name] = dumps(value) if kind == "json" else value
            record["cached"] = bool(record["cached"])
            idx = record.pop("idx")
            if scored is not None:
                record.update(scored.get(idx, {}))
            records.append(record)
        try:
            table = _arrow(records, run)
        except (ValueError, TypeError):  # ArrowInvalid and the like: a value not of its kind
            table = _arrow(_fitted(records, run), run)
        yield table


def _arrow(records: list[dict[str, Any]], run: RunInfo) -> pa.Table:
    """Records as one Arrow table of the run's schema (``ArrowInvalid`` if a value does not
    fit its column)."""
    import pyarrow.json as pa_json

    data = "\n".join(_line(record) for record in records).encode()
    # One block (a row never splits), so threads would have nothing to share: without them the
    # reader starts no thread pool (and its memory).
    read = pa_json.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
    parse = pa_json.ParseOptions(explicit_schema=schema(run))
    return pa_json.read_json(io.BytesIO(data), read_options=read, parse_options=parse)


def _inputs(text: str) -> dict[str, Any]:
    """A row's vars or params (JSON text); empty if the store holds something else."""
    try:
        values = json.loads(text)
    except (ValueError, RecursionError, TypeError):
        values = None
    if isinstance(values, dict):
        return values
    warnings.warn(f"not valid as a row's inputs: {str(text)[:60]!r}", PromptgridWarning,
                  stacklevel=4)  # fmt: skip
    return {}


def _fitted(records: list[dict[str, Any]], run: RunInfo) -> list[dict[str, Any]]:
    """``records`` with each value that does not fit its column's kind made null (text made
    encodable); a warning names those columns."""
    kinds = dict(columns(run))
    bad: dict[str, int] = {}
    out = []
    for record in records:
        fitted = {}
        for name, value in record.items():
            fit = _fit(value, kinds.get(name, "str"))
            if fit is None:
                bad[name] = bad.get(name, 0) + 1
            else:
                fitted[name] = fit
        out.append(fitted)
    if bad:
        listed = ", ".join(f"{name} ({n})" for name, n in bad.items())
        warnings.warn(
            f"run {run.run_id}: values in the store not valid for their column, read as empty: "
            f"{listed}",
            PromptgridWarning,
            stacklevel=4,
        )
    return out


def _fit(value: Any, kind: str) -> Any:
    """``value`` as a value of a column of ``kind``, or None if it is not one."""
    number = type(value) in (int, float) and math.isfinite(value)
    if kind == "int":
        integral = number and float(value).is_integer() and -(2**63) <= value < 2**63
        return int(value) if integral else None
    if kind == "float":
        return float(value) if number else None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, str):
        return untrusted.text(value)
    return str(value) if number else None  # a number in a text column reads as its digits


def _scores(
    store: Store, run: RunInfo, lo: int, hi: int, kinds: dict[str, str]
) -> dict[int, dict[str, Any]]:
    """The score columns of cells ``lo..hi``: idx -> column -> value."""
    out: dict[int, dict[str, Any]] = {}
    errors: dict[int, dict[str, str]] = {}
    for idx, _scorer, name, kind, value, error, reason, tokens, cost in scorestore.score_rows(
        store, run.run_id, lo, hi
    ):
        row = out.setdefault(idx, {})
        column = f"score_{name}"
        if column in kinds and (number := _score(value)) is not None:
            row[column] = (
                bool(number) if kind == "bool" else int(number) if kind == "int" else number
            )
        if error is not None:
            errors.setdefault(idx, {})[name] = error
        if f"{column}.reason" in kinds:
            row[f"{column}.reason"] = reason
        if "judge_tokens" in kinds and (tokens is not None or cost is not None):
            row["judge_tokens"] = (row.get("judge_tokens") or 0) + (tokens or 0)
            if cost is not None:
                row["judge_cost_usd"] = (row.get("judge_cost_usd") or 0.0) + cost
    for idx, found in errors.items():
        out[idx]["score_errors"] = dumps(found)
    return out


def _score(value: Any) -> float | None:
    """A stored score, if it is a finite number."""
    ok = type(value) in (int, float) and math.isfinite(value) and abs(value) < 2**63
    return value if ok else None


def to_dataframe(tables: Iterator[pa.Table], run: RunInfo) -> pd.DataFrame:
    """One DataFrame from a run's Arrow batches (nullable integers stay integers)."""
    import pandas as pd
    import pyarrow as pa

    parts = list(tables)
    table = pa.concat_tables(parts) if parts else schema(run).empty_table()
    frame: pd.DataFrame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    for name, kind in run.score_columns:  # a pass/fail score may be missing: pandas' boolean
        if kind == "bool" and name in frame.columns:
            frame[name] = frame[name].astype("boolean")
    return frame


def load_run(store: Store, run: RunInfo) -> pd.DataFrame:
    """A run's whole table as a DataFrame."""
    run = with_score_columns(store, run)
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
