"""kill -9 at each step of batch mode, then the same command again: no chunk lost, no batch
created twice, no request answered twice, every row present.

The ``promptgrid`` command runs in a child process against an in-process fault server. The
server calls a hook on each Files/Batch API call, on its own thread: the hook kills the child
(SIGKILL) at the chosen call — as it arrives (the call never takes effect) or once it took
effect (its answer is lost) — and closes the connection. Then the test runs the same command
again, in a child too, and checks the server's counters: uploads per file name, batches per
chunk metadata, answers per request. The steps around them (the submission a collection test
starts from, the final collection) run in this process, through the API: a child costs
seconds of start-up on a busy machine.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

import promptgrid
from processes import KEY, integrity, start
from promptgrid.store import Store
from promptgrid.store import batch as batchstore
from promptgrid.testing import FaultServer

pytestmark = pytest.mark.slow

#: 10 animals × 2 temperatures = 20 distinct requests, 4 cells sharing them (two animals
#: twice): chunks of 6 requests, so 4 chunks.
ANIMALS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay", "ant", "bee"]
CELLS = len(ANIMALS) * 2
REQUESTS = 20


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # for the steps run in this process
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FaultServer() as s:
        yield s


def experiment(folder: Path) -> Path:
    path = folder / "crash.yaml"
    data = {
        "name": "crash",
        "provider": "openai",
        "providers": {"openai": {"batch": {"max_requests": 6}}},
        "prompts": {"p": "Name a {{ animal }}"},
        "vars": {"animal": ANIMALS},
        "params": {"model": "gpt-4o-mini", "max_tokens": 10, "temperature": [0.0, 1.0]},
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class Killer:
    """A server hook that kills ``process`` at the ``nth`` call of ``event`` (``op`` as it
    arrives, ``op:done`` once it took effect) and closes that connection."""

    def __init__(self, event: str, nth: int) -> None:
        self.event, self.nth = event, nth
        self.seen = 0
        self.process: subprocess.Popen[str] | None = None
        self.fired = threading.Event()

    def __call__(self, event: str, info: Mapping[str, Any]) -> str | None:
        if event != self.event or self.fired.is_set():
            return None
        self.seen += 1
        if self.seen < self.nth or self.process is None:
            return None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.fired.set()
        return "abort"


def command(
    server: FaultServer, tmp_path: Path, *args: str, killer: Killer | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``promptgrid ARGS`` in a child (killed by ``killer``, if given)."""
    server.batches.set_hook(killer)
    process = start(*args, "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    if killer is not None:
        killer.process = process
    try:
        out, err = process.communicate(timeout=120)
    finally:
        server.batches.set_hook(None)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def submit(server: FaultServer, tmp_path: Path, killer: Killer | None = None) -> Any:
    path = experiment(tmp_path)
    return command(server, tmp_path, "run", str(path), "--batch", "--base-url",
                   server.base_url, killer=killer)  # fmt: skip


def the_run(tmp_path: Path) -> tuple[str, str, list[batchstore.Chunk]]:
    with Store.in_dir(tmp_path / "results", readonly=True) as store:
        (info,) = store.runs()
        return info.run_id, info.status, batchstore.chunks(store, info.run_id)


def assert_complete(server: FaultServer, tmp_path: Path) -> None:
    """Every cell has its row, every request was uploaded, batched and answered once."""
    run_id, status, chunks = the_run(tmp_path)
    assert status == "finished"
    assert [c.state for c in chunks] == ["collected"] * 4
    stats = server.batches.stats()
    assert stats["created"] == {f"{run_id}/{i}": 1 for i in range(4)}  # no duplicate batch
    assert set(stats["uploads"].values()) == {1} and len(stats["uploads"]) == 4
    assert len(stats["answered"]) == REQUESTS and set(stats["answered"].values()) == {1}
    db = sqlite3.connect(tmp_path / "results" / "promptgrid.sqlite")
    try:
        rows = db.execute("SELECT status, cached, COUNT(*) FROM results GROUP BY 1, 2")
        assert sorted(rows.fetchall()) == [("ok", 0, REQUESTS), ("ok", 1, CELLS - REQUESTS)]
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == REQUESTS
        spent = db.execute("SELECT COUNT(*) FROM results WHERE cost_usd > 0").fetchone()[0]
        assert spent == REQUESTS  # nothing paid twice
    finally:
        db.close()
    assert integrity(tmp_path / "results") == "ok"


def collect(server: FaultServer, tmp_path: Path, killer: Killer | None = None) -> Any:
    run_id, _, _ = the_run(tmp_path)
    return command(server, tmp_path, "batch", "collect", run_id, killer=killer)


def submit_here(server: FaultServer, tmp_path: Path) -> None:
    """``run --batch`` in this process."""
    df = promptgrid.run(experiment(tmp_path), base_url=server.base_url, batch=True,
                        results_dir=tmp_path / "results", progress=False)  # fmt: skip
    assert df.attrs["status"] == "submitted"


def collect_here(tmp_path: Path) -> None:
    """``batch collect`` in this process."""
    run_id, _, _ = the_run(tmp_path)
    df = promptgrid.collect(run_id, results_dir=tmp_path / "results", progress=False)
    assert len(df) == CELLS


@pytest.mark.parametrize(
    ("event", "nth"),
    [
        pytest.param("upload", 1, id="as-the-first-upload-arrives"),
        pytest.param("upload:done", 1, id="after-the-first-upload"),
        pytest.param("create", 1, id="as-the-first-batch-is-created"),
        pytest.param("create:done", 1, id="after-the-first-batch-is-created"),
        pytest.param("upload", 2, id="as-the-second-upload-arrives"),
        pytest.param("upload:done", 3, id="after-the-third-upload"),
        pytest.param("create:done", 4, id="after-the-last-batch-is-created"),
    ],
)
def test_a_kill_while_submitting(event: str, nth: int, server: FaultServer, tmp_path: Path) -> None:
    killer = Killer(event, nth)
    killed = submit(server, tmp_path, killer)
    assert killer.fired.is_set() and killed.returncode == -signal.SIGKILL
    again = submit(server, tmp_path)  # the same command
    assert again.returncode == 0, again.stderr
    assert "continuing run" in again.stderr
    server.batches.complete()
    collect_here(tmp_path)
    assert_complete(server, tmp_path)


def test_a_kill_during_the_recovery_of_a_kill(server: FaultServer, tmp_path: Path) -> None:
    first = Killer("create:done", 2)  # batch 1 made, its id never recorded
    assert submit(server, tmp_path, first).returncode == -signal.SIGKILL
    second = Killer("list", 1)  # killed while looking for it
    assert submit(server, tmp_path, second).returncode == -signal.SIGKILL
    third = Killer("upload:done", 1)  # then after the next chunk's upload
    assert submit(server, tmp_path, third).returncode == -signal.SIGKILL
    assert submit(server, tmp_path).returncode == 0
    server.batches.complete()
    collect_here(tmp_path)
    assert_complete(server, tmp_path)


@pytest.mark.parametrize(
    ("event", "nth"),
    [
        pytest.param("retrieve", 1, id="as-it-polls"),
        pytest.param("content", 1, id="as-the-first-output-is-downloaded"),
        pytest.param("content:done", 1, id="after-the-first-output-is-downloaded"),
        pytest.param("delete", 1, id="after-the-first-batch-is-collected"),
        pytest.param("content", 3, id="as-the-third-output-is-downloaded"),
    ],
)
def test_a_kill_while_collecting(event: str, nth: int, server: FaultServer, tmp_path: Path) -> None:
    submit_here(server, tmp_path)
    server.batches.complete()
    killer = Killer(event, nth)
    killed = collect(server, tmp_path, killer)
    assert killer.fired.is_set() and killed.returncode == -signal.SIGKILL
    done = collect(server, tmp_path)  # the same command
    assert done.returncode == 0, done.stderr
    assert_complete(server, tmp_path)
    _, _, chunks = the_run(tmp_path)
    assert Counter(c.state for c in chunks) == {"collected": 4}
