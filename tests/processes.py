"""Helpers for tests that drive the real ``promptgrid`` command in a child process and watch
its store from outside (the child runs on its own clock: polls are bounded, never sleeps)."""

from __future__ import annotations

import os
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

KEY = "sk-test-processes-1234567890"
CLI = [sys.executable, "-c", "from promptgrid.cli import main; main()"]


def start(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, progress: bool = False
) -> subprocess.Popen[str]:
    """Start ``promptgrid ARGS`` (with the test key in its environment)."""
    environment = {**os.environ, "OPENAI_API_KEY": KEY, **(env or {})}
    flags = [] if progress or args[0] not in ("run", "retry") else ["--no-progress"]
    return subprocess.Popen(
        [*CLI, *args, *flags], cwd=cwd, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def rows(results: Path, status: str | None = None) -> int:
    """Result rows committed so far (read-only, from outside the running process)."""
    db_path = results / "promptgrid.sqlite"
    if not db_path.exists():
        return 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        sql = "SELECT COUNT(*) FROM results" + (" WHERE status = ?" if status else "")
        return int(db.execute(sql, (status,) if status else ()).fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0
    finally:
        db.close()


def run_status(results: Path, run_id: str) -> str:
    """The status ``promptgrid runs`` shows for a run."""
    from promptgrid.store import Store

    with Store.in_dir(results, readonly=True) as store:
        info = store.run(run_id)
    assert info is not None
    return info.status


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll another process's progress; fail (not hang) if it never comes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the subprocess"
        time.sleep(0.01)


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 30.0) -> str:
    """Read the child's stderr until ``text`` appears; fail (not hang) if it never does.

    Reads the pipe directly (unbuffered), so nothing is left hidden in a buffer; what was read
    is returned (``communicate()`` then gives only the rest)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} from the subprocess; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"the subprocess closed stderr before {text!r}; got {seen!r}"
            seen += chunk
    return seen.decode()


def integrity(results: Path) -> str:
    """``PRAGMA integrity_check`` of the store."""
    db = sqlite3.connect(results / "promptgrid.sqlite")
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()
