"""Batch request files: the grid's requests as JSONL lines, cut at a file's limits.

A line is ``{"custom_id": <cell_id>, "method": "POST", "url": <API path>, "body": <the JSON the
online call sends>}`` (:func:`promptgrid.providers.payload.body`). :class:`ChunkFile` writes
lines to a file on disk as the grid is walked, so memory holds one line at a time whatever the
size of the grid, and says when the next line would pass ``max_requests`` or ``max_bytes``.
A file is a pure function of its chunk's cells: :func:`rebuild` writes it again, byte for byte,
when a crashed process has to upload a chunk it planned.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Iterable
from pathlib import Path
from typing import IO

from ...grid import Cell
from ...providers.payload import body
from ...spec.schema import BatchSpec

__all__ = ["ChunkFile", "NotIn", "encode", "rebuild"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def encode(cell: Cell, url: str) -> bytes:
    """The request file line of ``cell`` (newline included)."""
    line = {"custom_id": cell.cell_id, "method": "POST", "url": url, "body": body(cell.request)}
    return (_encode(line) + "\n").encode()


class NotIn(Container[int]):
    """Every cell index but ``wanted`` (a ``skip`` for :func:`promptgrid.grid.expand` that
    walks only some cells)."""

    def __init__(self, wanted: Container[int]) -> None:
        self.wanted = wanted

    def __contains__(self, index: object) -> bool:
        return index not in self.wanted


class ChunkFile:
    """The request file of the chunk being built: its lines on disk, its cells and its worst
    case."""

    def __init__(self, path: Path, limits: BatchSpec) -> None:
        self.path = path
        self.limits = limits
        self._out: IO[bytes] | None = None
        self.requests = 0  #: lines written
        self.size = 0  #: bytes written
        self.worst = 0.0  #: USD its requests may cost at most
        self.cells: list[tuple[int, str]] = []  #: (idx, cell_id) it answers, shared ones too
        self.ids: list[str] = []  #: the cell ids of its lines

    def fits(self, line: bytes) -> bool:
        """Whether ``line`` may still go in (an empty file takes any line: see ``too_big``)."""
        if self.requests == 0:
            return True
        return (
            self.requests + 1 <= self.limits.max_requests
            and self.size + len(line) <= self.limits.max_bytes
        )

    def too_big(self, line: bytes) -> bool:
        """A line no file can hold."""
        return len(line) > self.limits.max_bytes

    def add(self, idx: int, cell_id: str, line: bytes, worst: float) -> None:
        """Write one request."""
        if self._out is None:
            self._out = self.path.open("wb")
        self._out.write(line)
        self.requests += 1
        self.size += len(line)
        self.worst += worst
        self.cells.append((idx, cell_id))
        self.ids.append(cell_id)

    def share(self, idx: int, cell_id: str) -> None:
        """A cell whose request is already one of this file's lines."""
        self.cells.append((idx, cell_id))

    def close(self) -> None:
        """Flush the file to disk."""
        if self._out is not None:
            self._out.close()
            self._out = None

    @property
    def worst_cost(self) -> float | None:
        """The worst case to record (None when it cannot be bounded)."""
        return self.worst if math.isfinite(self.worst) else None


def rebuild(cells: Iterable[Cell], url: str, path: Path) -> tuple[int, int]:
    """Write a chunk's file again from its cells (in grid order, a shared request once);
    ``(requests, bytes)`` written."""
    seen: set[str] = set()
    requests = size = 0
    with path.open("wb") as out:
        for cell in cells:
            if cell.cell_id in seen:
                continue
            seen.add(cell.cell_id)
            line = encode(cell, url)
            out.write(line)
            requests += 1
            size += len(line)
    return requests, size
