"""Every ``sqlite3`` or file-system failure of the store, as a :class:`StoreError` saying what
failed, which file, and what to do."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..errors import StoreCorrupt, StoreError, StoreFull, StoreLocked, StoreReadOnly

T = TypeVar("T")
#: How long a write waits for another connection's lock before it is a failure.
BUSY_TIMEOUT_MS = 5000


class _HasPath(Protocol):
    path: Path


def translate(exc: BaseException, path: Path, doing: str) -> StoreError:
    """The :class:`StoreError` for a ``sqlite3`` or file-system failure on ``path``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    low = text.lower()
    if isinstance(exc, StoreError):
        return exc
    if "SQLITE_FULL" in name or "disk is full" in low or getattr(exc, "errno", None) == 28:
        return StoreFull(
            f"the disk holding {path} is full ({doing}): free some space, then resume the run; "
            "everything committed before is safe"
        )
    if "BUSY" in name or "LOCKED" in name or "database is locked" in low:
        return StoreLocked(
            f"{path} stayed locked by another connection for {BUSY_TIMEOUT_MS / 1000:g} s "
            f"({doing}): close the program holding it (an open `sqlite3` shell, a long query), "
            "then resume the run"
        )
    if (
        "CORRUPT" in name or "NOTADB" in name or "malformed" in low
        or "not a database" in low or "file is encrypted" in low
    ):  # fmt: skip
        return StoreCorrupt(
            f"{path} is damaged or not a promptgrid store ({text}; {doing}): move it aside and "
            f"run again (answers in it are then not reused), or salvage it with "
            f"`sqlite3 {path} .recover`"
        )
    if "READONLY" in name or "readonly" in low or isinstance(exc, PermissionError):
        return StoreReadOnly(
            f"{path} cannot be written ({text}; {doing}): make it and its folder writable, or "
            "use another --results-dir"
        )
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return StoreError(
            f"cannot create {path.parent}: a file is in the way ({text}); "
            "choose another --results-dir"
        )
    if "CANTOPEN" in name or "unable to open" in low:
        return StoreReadOnly(
            f"cannot open {path} ({text}; {doing}): check that its folder exists and is writable"
        )
    return StoreError(f"{doing} failed on {path}: {text}")


def guarded(doing: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Translate the ``sqlite3`` and file-system errors of a store method (or of a function
    taking the store first) into :class:`StoreError`."""

    def wrap(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def translated(store: _HasPath, *args: Any, **kwargs: Any) -> T:
            try:
                return method(store, *args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                raise translate(exc, store.path, doing) from None

        return translated

    return wrap
