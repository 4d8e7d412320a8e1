"""Parquet and CSV: Arrow's own streaming writers, fed batch by batch.

Parquet gets one row group per batch and keeps every value exactly as stored; CSV a header,
then the rows. A CSV file is opened in spreadsheets, which evaluate a cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return: ``=HYPERLINK("http://…"&A2,"Click")``
from an answer or a dataset becomes a live link carrying other cells. So by default a text
cell (and a header) that starts so is written with a single quote in front (OWASP's advice on
CSV injection), unless it is a plain number (``-2``, ``+1.5e3``: a spreadsheet reads it as the
number it is). Numeric columns are never touched. ``verbatim=True`` writes every text as stored.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import RunInfo
from ..table import schema

if TYPE_CHECKING:
    import pyarrow as pa

#: A text a spreadsheet would evaluate as a formula (or DDE command) when a CSV cell holds it.
FORMULA_START = r"^[=+\-@\t\r]"
#: ...unless it is a plain number, which it reads as that number.
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


class ArrowWriter:
    """Streams a run's batches into one parquet or CSV file (see the module docstring for
    what ``verbatim`` changes in CSV)."""

    def __init__(self, fmt: str, path: Path, run: RunInfo, *, verbatim: bool = False) -> None:
        impl: Any
        target = schema(run)
        self._escape = fmt == "csv" and not verbatim
        if fmt == "parquet":
            import pyarrow.parquet as pq

            impl = pq.ParquetWriter(path, target)
        else:
            import pyarrow.csv as pcsv

            if self._escape:
                target = _escaped_names(target)
            impl = pcsv.CSVWriter(path, target)
        self._impl = impl
        self._names = target.names

    def write(self, table: pa.Table) -> None:
        """Append one batch."""
        if self._escape:
            table = as_text(table).rename_columns(self._names)
        self._impl.write_table(table)

    def close(self) -> None:
        """Flush (parquet: write the footer): the file is complete."""
        self._impl.close()

    def abort(self) -> None:
        """Release the file (it is discarded)."""
        with contextlib.suppress(Exception):
            self._impl.close()


def as_text(table: pa.Table) -> pa.Table:
    """``table`` with each text cell a spreadsheet would evaluate prefixed by ``'``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, column in enumerate(table.columns):
        if not pa.types.is_string(column.type):
            continue
        # A cheap look first (no copy of the column): most columns have no such cell.
        if not any(pc.any(pc.starts_with(column, c)).as_py() for c in "=+-@\t\r"):
            continue
        risky = pc.and_kleene(
            pc.match_substring_regex(column, FORMULA_START),
            pc.invert(pc.match_substring_regex(column, _NUMBER)),
        )
        quoted = pc.binary_join_element_wise("'", column, "")
        table = table.set_column(i, table.field(i), pc.if_else(risky, quoted, column))
    return table


def _escaped_names(target: pa.Schema) -> pa.Schema:
    """The schema with each column name a spreadsheet would evaluate prefixed by ``'``."""
    import re

    import pyarrow as pa

    fields = [
        field.with_name(f"'{field.name}")
        if re.match(FORMULA_START, field.name) and not re.match(_NUMBER, field.name)
        else field
        for field in target
    ]
    return pa.schema(fields, metadata=target.metadata)
