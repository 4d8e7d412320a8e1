"""Case rows: a dataset of template variables that is not crossed with itself.

Rows come from ``cases:`` in the file or from ``cases_file:`` (CSV or JSONL). A case file is
scanned once at validation (to check it and count its rows) and streamed again for each prompt,
so a large dataset is never held in memory.

Case files are read as UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8" writes
one), one physical line at a time: a line longer than ``MAX_LINE_CHARS`` is an error, so a
file without line breaks cannot fill the memory. A CSV file is read strictly: its header names
every column once, every row has as many fields as the header, and a quote left open (which
would swallow the rows after it) is an error naming the line where it opened.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import untrusted
from ..errors import Problem

#: Characters in one physical line of a case file (a long document per row fits).
MAX_LINE_CHARS = 10_000_000

_SAVE_AS_UTF8 = "save it as UTF-8 (in Excel: Save As > CSV UTF-8)"


class CaseFileError(ValueError):
    """A case file is malformed at ``line``: ``message`` says what, ``hint`` what to do."""

    def __init__(self, line: int | None, message: str, hint: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


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
        except CaseFileError as exc:
            at = f"{path.name}:{exc.line}:" if exc.line else path.name
            return empty, [problem(f"{at} {exc.message}", exc.hint)]
        except OSError as exc:
            return empty, [problem(f"cannot read {path}: {exc}")]
        if not count:
            return empty, [problem(f"{path.name} is empty", "add at least one row")]
        types = tuple((k, frozenset(v)) for k, v in seen.items())
        return replace(source, columns=columns or (), count=count, types=types), []

    def rows(self) -> Generator[dict[str, Any], None, None]:
        """Every row, in file order."""
        if self.inline is not None:
            yield from self.inline
        else:
            for _, row in self._read():
                yield row

    def _read(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line, row)`` for each row; raises :class:`CaseFileError` at the first fault."""
        assert self.path is not None
        with self.path.open(encoding="utf-8-sig", newline="") as f:
            lines = _lines(f, self.path)
            if self.path.suffix.lower() == ".csv":
                yield from _csv_rows(lines)
                return
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = untrusted.loads(line)
                except ValueError as exc:  # JSONDecodeError, or an integer of 5,000 digits
                    message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                    raise CaseFileError(
                        lineno, f"invalid JSON: {message}", "write one JSON object per line"
                    ) from None
                except RecursionError:
                    raise CaseFileError(
                        lineno, "values nested too deeply to read", "flatten the row's values"
                    ) from None
                if not isinstance(row, dict):
                    raise CaseFileError(
                        lineno, "each line must be a JSON object", 'e.g. {"review": "Great"}'
                    )
                if "\\u" in line:  # only an escape ("\\ud800") can hold no character
                    _check_text(row, lineno)
                yield lineno, row


def _check_text(row: dict[str, Any], lineno: int) -> None:
    """Refuse a row whose text holds a UTF-16 surrogate JSON could not pair (``"\\ud800"``
    alone): no character, and UTF-8 cannot encode it."""
    todo: list[Any] = [row]
    while todo:
        value = todo.pop()
        if isinstance(value, str):
            if untrusted.has_surrogate(value):
                raise CaseFileError(
                    lineno,
                    "a lone UTF-16 surrogate escape (\\ud800-\\udfff) is not a character: UTF-8 "
                    "cannot encode it",
                    'write the character itself, or both halves of its pair: "\\ud83d\\ude00"',
                )
        elif isinstance(value, dict):
            todo += [*value, *value.values()]
        elif isinstance(value, list):
            todo += value


def _lines(f: Any, path: Path) -> Iterator[str]:
    """The file's physical lines, each at most ``MAX_LINE_CHARS`` long (memory stays bounded)."""
    lineno = 0
    while True:
        try:
            line = f.readline(MAX_LINE_CHARS + 1)
        except UnicodeDecodeError:
            raise CaseFileError(_undecodable_line(path), "not UTF-8 text", _SAVE_AS_UTF8) from None
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE_CHARS:
            raise CaseFileError(
                lineno,
                f"a line longer than {MAX_LINE_CHARS:,} characters",
                "check the file: each row must end with a line break",
            )
        yield line


def _undecodable_line(path: Path) -> int | None:
    """The line of the first byte that is not UTF-8 (text files decode in blocks, so the error
    does not know its line): found again, block by block."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lineno = 1
    with path.open("rb") as f:
        while block := f.read(1 << 16):
            pending = len(decoder.getstate()[0])  # the end of a character cut by the last block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return lineno + block.count(b"\n", 0, max(exc.start - pending, 0))
            lineno += block.count(b"\n")
    return None


def _csv_rows(lines: Iterator[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """CSV rows as dicts keyed by the header; faults a forgiving reader would hide are errors."""
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    start = 1  # the line where the current record starts (a quoted field may span lines)
    rows = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            if header is not None and not rows:
                raise CaseFileError(
                    None, "has a header but no rows", "add at least one row below the header"
                ) from None
            return
        except csv.Error as exc:
            raise _csv_error(exc, start, reader.line_num) from None
        line, start = start, reader.line_num + 1
        if not fields:  # a blank line
            continue
        if header is None:
            _check_header(fields, line)
            header = fields
            continue
        if len(fields) != len(header):
            few = len(fields) < len(header)
            raise CaseFileError(
                line,
                f"{len(fields)} field{'s' if len(fields) != 1 else ''} but the header has "
                f"{len(header)} ({', '.join(header)})",
                "give every row one field per column; an empty value is written ,,"
                + (" (or a quote left open further up swallowed a line break)" if few else ""),
            )
        rows += 1
        yield line, dict(zip(header, fields, strict=True))


def _check_header(fields: list[str], line: int) -> None:
    where: dict[str, int] = {}
    for number, name in enumerate(fields, 1):
        if not name.strip():
            raise CaseFileError(
                line,
                f"column {number} of the header has no name",
                "name every column in the first line, or delete the empty column",
            )
        if name in where:
            raise CaseFileError(
                line,
                f"column {name!r} appears twice in the header (columns {where[name]} and {number})",
                "rename one of them: each column becomes one template variable",
            )
        where[name] = number


def _csv_error(exc: csv.Error, start: int, line: int) -> CaseFileError:
    text = str(exc)
    if "unexpected end of data" in text:
        return CaseFileError(
            start,
            "a quoted field opened on this line is never closed (it runs to the end of the file)",
            'close the quote; a quote inside a quoted field is written twice ("")',
        )
    if "expected after" in text:
        return CaseFileError(
            line,
            f"text after a closing quote ({text})"
            + (f"; the row starts on line {start}" if start != line else ""),
            'quote the whole field and write each quote inside it twice (""), '
            "or close a quote left open further up",
        )
    if "field larger than field limit" in text:
        return CaseFileError(
            start,
            f"a field longer than {csv.field_size_limit():,} characters in the row starting here",
            "close the quote if one is left open on this line (it swallows the rows after it); "
            "otherwise put long texts in a .jsonl file (one JSON object per line)",
        )
    return CaseFileError(line, f"invalid CSV: {text}", "fix the file at that line")


def _types(rows: list[dict[str, Any]]) -> tuple[tuple[str, frozenset[str]], ...]:
    seen: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            seen.setdefault(key, set()).add(type(value).__name__)
    return tuple((k, frozenset(v)) for k, v in seen.items())
