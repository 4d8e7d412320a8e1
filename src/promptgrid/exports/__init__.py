"""Files of a run's table: parquet, CSV, XLSX, JSONL and the HTML report, written batch by batch.

The store is read once; each batch goes to every format's writer in turn, so a run is never
held whole in memory. Each file is written under a unique temp name in its folder and renamed
into place when complete (see ``_atomic``): a reader never sees half a file, and two exports of
one run at once both succeed.

A failure of one format never stops the others: ``export`` writes every file it can, then, if
any format failed, raises one :class:`~promptgrid.errors.ExportFailed` naming each failed
format, why, and the command that writes it again. File-system errors (disk full, read-only
folder) are translated into promptgrid's store errors for that message. A failure to read the
store stops every format and leaves no file half-written.

XLSX keeps text as text and escapes characters it cannot hold (see ``xlsx``); JSONL is strict
JSON (NaN and infinities are ``null``); parquet is written as stored, and so is CSV except for
text a spreadsheet would evaluate as a formula, which gets a ``'`` in front (see ``arrow``).
The files are ``results.<format>``, except the report: ``report.html``. XLSX's
compare/summary sheets and the report aggregate, so they keep the columns they need until the
end (not ``messages``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import ExportFailed, UsageError
from ..store import RunInfo, Store, races, translate
from ..table import batches, with_score_columns
from ._atomic import remove_stale, temp_path
from .choices import Repeats

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DEFAULT_FORMATS", "FORMATS", "Repeats", "export", "file_name", "formats_present",
    "parse_formats",
]  # fmt: skip

FORMATS = ("parquet", "csv", "xlsx", "jsonl", "html")
DEFAULT_FORMATS = ("parquet", "csv")


def file_name(fmt: str) -> str:
    """The file a format is written to in a run's folder."""
    return "report.html" if fmt == "html" else f"results.{fmt}"


def parse_formats(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"parquet,csv"`` -> ``("parquet", "csv")``; rejects unknown formats."""
    if text is None:
        return DEFAULT_FORMATS
    items = text.split(",") if isinstance(text, str) else list(text)
    out = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in items if f.strip()))
    unknown = [f for f in out if f not in FORMATS]
    if unknown or not out:
        raise UsageError(f"unknown format {unknown or text!r}: choose from {', '.join(FORMATS)}")
    return out


def formats_present(folder: Path) -> tuple[str, ...]:
    """The formats of the ``results.<format>`` files in ``folder``, so a rewrite of a run's
    files (resume, retry) also refreshes one exported there later."""
    return tuple(fmt for fmt in FORMATS if (folder / file_name(fmt)).is_file())


def export(
    store: Store,
    run: RunInfo,
    target: Path,
    formats: Sequence[str],
    keep: list[pa.Table] | None = None,
    *,
    repeats: Repeats = "stack",
    csv_verbatim: bool = False,
) -> list[Path]:
    """Write the run's table in each format, streaming batch by batch; the files written.

    ``target`` is a directory (files named ``results.<format>``, and ``report.html``) or, with
    one format, a file. ``keep``, a list, also receives the batches, so a caller that wants the
    DataFrame too does not read the store twice. ``repeats`` lays out the XLSX compare sheet.
    ``csv_verbatim`` writes CSV text as stored, even cells a spreadsheet would evaluate as
    formulas (by default they get a ``'`` in front: see ``exports.arrow``).
    Raises :class:`~promptgrid.errors.ExportFailed` after writing the other formats if any
    format failed.
    """
    paths = _targets(target, formats) if formats else {}
    if not paths and keep is None:
        return []
    run = races.attach(store, with_score_columns(store, run))
    outputs = [_Output(fmt, path) for fmt, path in paths.items()]
    _open(outputs, run, repeats, csv_verbatim)
    try:
        if keep is not None or any(out.writer for out in outputs):
            for table in batches(store, run):
                for out in outputs:
                    out.write(table)
                if keep is not None:
                    keep.append(table)
        for out in outputs:
            out.finish()
    finally:
        for out in outputs:
            out.discard()  # after a failure to read the store: no file is left half-written
    written = [out.path for out in outputs if out.done]
    failed = {out.fmt: out.reason for out in outputs if out.reason is not None}
    if failed:
        first = next(out.error for out in outputs if out.error is not None)
        message = _failure_message(store, run, target, written, failed)
        raise ExportFailed(message, written=written, failed=failed) from first
    return written


def _targets(target: Path, formats: Sequence[str]) -> dict[str, Path]:
    if target.suffix.lstrip(".") in FORMATS:
        if len(formats) > 1 or target.suffix.lstrip(".") != formats[0]:
            raise UsageError(f"{target} names one file; its suffix must match --format {formats}")
        return {formats[0]: target}
    return {fmt: target / file_name(fmt) for fmt in formats}


class _Writer(Protocol):
    """One format's writer: created on its temp file, fed every batch, then closed."""

    def write(self, table: pa.Table) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def _writer(fmt: str, path: Path, run: RunInfo, repeats: Repeats, verbatim: bool) -> _Writer:
    if fmt in ("parquet", "csv"):
        from .arrow import ArrowWriter

        return ArrowWriter(fmt, path, run, verbatim=verbatim)
    if fmt == "jsonl":
        from .jsonl import JsonlWriter

        return JsonlWriter(path, run)
    if fmt == "html":
        from .report import ReportWriter

        return ReportWriter(path, run)
    from .xlsx import XlsxWriter

    return XlsxWriter(path, run, repeats=repeats)


def _open(outputs: list[_Output], run: RunInfo, repeats: Repeats, verbatim: bool) -> None:
    """Create each folder (once), clear it of dead processes' temp files, open the writers."""
    ready: dict[Path, BaseException | None] = {}
    for out in outputs:
        folder = out.path.parent
        if folder not in ready:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                remove_stale(folder)
                ready[folder] = None
            except OSError as exc:
                ready[folder] = exc
        problem = ready[folder]
        if problem is not None:
            out.fail(problem)
        else:
            out.open(run, repeats, verbatim)


@dataclass
class _Output:
    """One file being written: its writer while open, or why it failed."""

    fmt: str
    path: Path
    tmp: Path = field(init=False)
    writer: _Writer | None = None
    done: bool = False
    error: BaseException | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        self.tmp = temp_path(self.path)

    def open(self, run: RunInfo, repeats: Repeats, verbatim: bool) -> None:
        try:
            self.writer = _writer(self.fmt, self.tmp, run, repeats, verbatim)
        except Exception as exc:  # one format's failure must not stop the others
            self.fail(exc)

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(table)
        except Exception as exc:
            self.fail(exc)

    def finish(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.close()
            self.writer = None
            self.tmp.replace(self.path)  # atomic: a reader sees the old file or the new one
            self.done = True
        except Exception as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        self.error, self.reason = exc, _reason(exc, self.fmt, self.path)
        self.discard()

    def discard(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        if not self.done:
            with contextlib.suppress(OSError):
                self.tmp.unlink(missing_ok=True)


def _reason(exc: BaseException, fmt: str, path: Path) -> str:
    """Why a format failed, with what to do about it."""
    if isinstance(exc, OSError):
        where = path
        name = exc.filename
        if isinstance(name, (str, os.PathLike)) and Path(name).parent != path.parent:
            where = Path(name)  # e.g. a sheet's temp file in the system temp folder
        return str(translate(exc, where, f"writing {fmt}"))
    return f"{type(exc).__name__}: {exc} (a bug in promptgrid: please report it)"


def _failure_message(
    store: Store, run: RunInfo, target: Path, written: list[Path], failed: dict[str, str]
) -> str:
    results_dir = store.path.parent
    command = ["promptgrid", "export", run.run_id, "--results-dir", str(results_dir),
               "--format", ",".join(failed)]  # fmt: skip
    if target != results_dir / run.experiment / run.run_id:
        command += ["-o", str(target)]
    done = f" ({', '.join(p.name for p in written)} written)" if written else ""
    lines = [f"could not write {', '.join(failed)} of run {run.run_id}{done}:"]
    lines += [f"- {fmt}: {reason}" for fmt, reason in failed.items()]
    lines.append(f"  -> once fixed, write {'it' if len(failed) == 1 else 'them'} again: "
                 + shlex.join(command))  # fmt: skip
    return "\n".join(lines)
