"""Case rows: a dataset of template variables that is not crossed with itself.

Rows come from ``cases:`` in the file or from ``cases_file:`` (CSV or JSONL). A case file is
scanned once at validation (to check it and count its rows) and streamed again for each prompt,
so a large dataset is never held in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import Problem


@dataclass(frozen=True)
class CaseSource:
    """Where case rows come from, their columns and how many there are."""

    columns: tuple[str, ...]
    count: int
    inline: tuple[dict[str, Any], ...] | None = None
    path: Path | None = None
    # Python type names seen in each column (CSV: always str), for the exported files' schema.
    types: tuple[tuple[str, frozenset[str]], ...] = ()

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]] | None) -> CaseSource:
        """Cases given inline in the experiment."""
        if not rows:
            return cls((), 1, ({},))
        return cls(tuple(rows[0]), len(rows), tuple(rows), types=_types(rows))

    @classmethod
    def from_file(cls, path: Path, where: Problem) -> tuple[CaseSource, list[Problem]]:
        """Scan a CSV or JSONL file; ``where`` locates the ``cases_file`` key for messages."""
        empty = cls((), 1, ({},))

        def problem(message: str, hint: str | None = None) -> Problem:
            return replace(where, message=message, hint=hint)

        if path.suffix.lower() not in (".csv", ".jsonl"):
            return empty, [problem(f"{path.name}: cases_file must be .csv or .jsonl")]
        if not path.is_file():
            return empty, [
                problem(f"no such file: {path}", "the path is relative to the experiment file")
            ]
        source = cls((), 0, None, path)
        columns: tuple[str, ...] | None = None
        count = 0
        seen: dict[str, set[str]] = {}
        try:
            for lineno, row in source._read():
                if columns is None:
                    columns = tuple(row)
                elif set(row) != set(columns):
                    return empty, [
                        problem(
                            f"{path.name}:{lineno}: columns {sorted(row)} differ from the first "
                            f"row's {list(columns)}",
                            "give every row the same keys",
                        )
                    ]
                for key, value in row.items():
                    seen.setdefault(key, set()).add(type(value).__name__)
                count += 1
        except ValueError as exc:
            return empty, [problem(str(exc), "fix the file")]
        except OSError as exc:
            return empty, [problem(f"cannot read {path}: {exc}")]
        if not count:
            return empty, [problem(f"{path.name} has no rows", "add at least one row")]
        types = tuple((k, frozenset(v)) for k, v in seen.items())
        return replace(source, columns=columns or (), count=count, types=types), []

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row, in file order."""
        if self.inline is not None:
            yield from self.inline
        else:
            for _, row in self._read():
                yield row

    def _read(self) -> Iterator[tuple[int, dict[str, Any]]]:
        assert self.path is not None
        with self.path.open(encoding="utf-8", newline="") as f:
            if self.path.suffix.lower() == ".csv":
                reader = csv.DictReader(f)
                for row in reader:
                    if None in row:
                        raise ValueError(
                            f"{self.path.name}:{reader.line_num}: more fields than the header"
                        )
                    yield reader.line_num, row
                return
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"{self.path.name}:{lineno}: invalid JSON: {exc.msg}"
                    ) from None
                if not isinstance(row, dict):
                    raise ValueError(f"{self.path.name}:{lineno}: each line must be a JSON object")
                yield lineno, row


def _types(rows: list[dict[str, Any]]) -> tuple[tuple[str, frozenset[str]], ...]:
    seen: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            seen.setdefault(key, set()).add(type(value).__name__)
    return tuple((k, frozenset(v)) for k, v in seen.items())
