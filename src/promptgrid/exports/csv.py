"""CSV: a header, then the batches, through pyarrow (written exactly as stored)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..store import RunInfo
from ..table import schema

if TYPE_CHECKING:
    import pyarrow as pa


class CsvWriter:
    """Streams a run's batches into one CSV file."""

    def __init__(self, path: Path, run: RunInfo) -> None:
        import pyarrow.csv as pcsv

        self._impl = pcsv.CSVWriter(path, schema(run))

    def write(self, table: pa.Table) -> None:
        """Append one batch."""
        self._impl.write_table(table)

    def close(self) -> None:
        """Flush and close: the file is complete."""
        self._impl.close()

    def abort(self) -> None:
        """Release the file (it is discarded)."""
        with contextlib.suppress(Exception):
            self._impl.close()
