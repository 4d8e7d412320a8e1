"""JSONL: one strict JSON object per row (NaN and infinities become ``null``)."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import RunInfo

if TYPE_CHECKING:
    import pyarrow as pa


def _finite(value: Any) -> Any:
    # JSON has no NaN or Infinity; Python's json writes them bare, which strict readers reject.
    return None if isinstance(value, float) and not math.isfinite(value) else value


class JsonlWriter:
    """Streams a run's batches into one JSON-lines file."""

    def __init__(self, path: Path, run: RunInfo) -> None:
        self._file = path.open("w", encoding="utf-8", newline="\n")

    def write(self, table: pa.Table) -> None:
        """Append one line per row."""
        names = table.column_names
        lines = [
            json.dumps(
                {name: _finite(value) for name, value in zip(names, row, strict=True)},
                ensure_ascii=False,
                allow_nan=False,
            )
            for row in zip(*(column.to_pylist() for column in table.columns), strict=True)
        ]
        if lines:
            self._file.write("\n".join(lines) + "\n")

    def close(self) -> None:
        """Flush and close: the file is complete."""
        self._file.close()

    def abort(self) -> None:
        """Release the file (it is discarded)."""
        with contextlib.suppress(OSError):
            self._file.close()
