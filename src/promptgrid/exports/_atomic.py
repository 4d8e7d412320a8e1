"""Temp files in the target folder, renamed into place; leftovers of dead processes removed.

A file is written as ``.<name>.<pid>-<token>@<host>.tmp`` next to its final name and renamed
over it when complete, so a reader never sees half a file and two exports of one run never
share a temp file (the last rename wins; each file it leaves is whole). A process killed with
``kill -9`` cannot remove its temp file; the next export into the folder does, once the pid in
the name is no longer alive on this host. A live process's file, or another host's (a shared
folder), is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
from pathlib import Path

from ..store import pid_alive

_SUFFIXES = ("parquet", "csv", "xlsx", "jsonl", "html")
_TEMP = re.compile(
    r"\.(?P<name>.+\.(?:" + "|".join(_SUFFIXES) + r"))"
    r"\.(?P<pid>\d{1,9})-(?P<token>[0-9a-f]{8})@(?P<host>[A-Za-z0-9._-]+)\.tmp"
)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "_"


def temp_path(path: Path, pid: int | None = None) -> Path:
    """A unique temp file next to ``path`` owned by ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return path.with_name(f".{path.name}.{pid}-{secrets.token_hex(4)}@{_host()}.tmp")


def remove_stale(folder: Path) -> None:
    """Remove temp files in ``folder`` left by processes of this host that are gone."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there, not probe it
        return
    host = _host()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMP.fullmatch(entry.name)
            if match and match["host"] == host and not pid_alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
