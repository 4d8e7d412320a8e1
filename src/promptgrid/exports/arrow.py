"""Parquet and CSV: Arrow's own streaming writers, fed batch by batch (written as stored).

Parquet gets one row group per batch; CSV a header, then the rows.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import RunInfo
from ..table import schema

if TYPE_CHECKING:
    import pyarrow as pa


class ArrowWriter:
    """Streams a run's batches into one parquet or CSV file."""

    def __init__(self, fmt: str, path: Path, run: RunInfo) -> None:
        impl: Any
        if fmt == "parquet":
            import pyarrow.parquet as pq

            impl = pq.ParquetWriter(path, schema(run))
        else:
            import pyarrow.csv as pcsv

            impl = pcsv.CSVWriter(path, schema(run))
        self._impl = impl

    def write(self, table: pa.Table) -> None:
        """Append one batch."""
        self._impl.write_table(table)

    def close(self) -> None:
        """Flush (parquet: write the footer): the file is complete."""
        self._impl.close()

    def abort(self) -> None:
        """Release the file (it is discarded)."""
        with contextlib.suppress(Exception):
            self._impl.close()
