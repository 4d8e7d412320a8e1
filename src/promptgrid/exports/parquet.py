"""Parquet: one row group per batch, through pyarrow."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..store import RunInfo
from ..table import schema

if TYPE_CHECKING:
    import pyarrow as pa


class ParquetWriter:
    """Streams a run's batches into one parquet file."""

    def __init__(self, path: Path, run: RunInfo) -> None:
        import pyarrow.parquet as pq

        self._impl = pq.ParquetWriter(path, schema(run))

    def write(self, table: pa.Table) -> None:
        """Append one batch."""
        self._impl.write_table(table)

    def close(self) -> None:
        """Write the footer: the file is complete."""
        self._impl.close()

    def abort(self) -> None:
        """Release the file (it is discarded)."""
        with contextlib.suppress(Exception):
            self._impl.close()
