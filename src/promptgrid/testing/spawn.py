"""A fault server in a child process, steered over HTTP.

Benchmarks measure a client's throughput; a server on the client's own interpreter would share
its GIL and skew the numbers. The child runs ``python -m promptgrid.testing`` (the command line in
:mod:`promptgrid.testing.__main__`), which imports aiohttp and the standard library only —
``import promptgrid`` is lazy, so neither pandas nor openai is loaded — and announces itself with
one ``READY <base_url>`` line on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .server import _Controls

__all__ = ["RemoteFaultServer", "spawn_fault_server"]

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
# The directory holding the ``promptgrid`` package this module came from: the child must import
# the same code as its parent, installed or not.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class RemoteFaultServer(_Controls):
    """Steers a fault server in another process over its ``/_pg/*`` control endpoints."""

    def __init__(self, base_url: str, process: subprocess.Popen[str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.process = process
        self._root = self.base_url.removesuffix("/v1")

    @property
    def batches(self) -> RemoteBatches:
        """Its batches, steered over HTTP (as :attr:`FaultServer.batches`, without the hook,
        which cannot cross processes)."""
        return RemoteBatches(self)

    def _act(self, action: str, data: Any = None) -> Any:
        # Answering a batch of 50,000 requests takes seconds: its controls may take minutes.
        timeout = 600 if action == "batches" else 10
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(
            f"{self._root}/_pg/{action}", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with _NO_PROXY.open(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # the server's validation error, as a local one
            with exc:
                raise ValueError(json.loads(exc.read())["error"]["message"]) from None


class RemoteBatches:
    """The batch controls of a fault server in another process (``POST /_pg/batches``)."""

    def __init__(self, server: RemoteFaultServer) -> None:
        self._server = server

    def _do(self, do: str, **data: Any) -> Any:
        return self._server._act("batches", {"do": do, **data})

    def ids(self) -> list[str]:
        """Every batch id, oldest first."""
        return list(self._do("ids"))

    def progress(self, batch_id: str | None = None, done: int = 0) -> None:
        """The first ``done`` requests are answered."""
        self._do("progress", batch_id=batch_id, done=done)

    def complete(self, batch_id: str | None = None) -> None:
        """Answer every request: ``completed``."""
        self._do("complete", batch_id=batch_id)

    def expire(self, batch_id: str | None = None, done: int | None = None) -> None:
        """``expired``, the rest ``batch_expired``."""
        self._do("expire", batch_id=batch_id, done=done)

    def fail(self, batch_id: str | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        """``failed`` validation."""
        self._do("fail", batch_id=batch_id, errors=errors)

    def script(self, faults: list[str], op: str | None = None) -> None:
        """Fail the next Files/Batch API calls."""
        self._do("script", faults=faults, op=op)

    def stats(self) -> dict[str, Any]:
        """As :meth:`promptgrid.testing.BatchControls.stats`."""
        return dict(self._do("stats"))


@contextlib.contextmanager
def spawn_fault_server(
    *, port: int = 0, startup_timeout: float = 10.0, **config: Any
) -> Iterator[RemoteFaultServer]:
    """Run a fault server in a child process (settings as :class:`FaultServer`); yields a
    :class:`RemoteFaultServer` and terminates the process (SIGTERM) on exit."""
    config = {k: sorted(v) if k == "api_keys" and v is not None else v for k, v in config.items()}
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_PACKAGE_ROOT, *([path] if path else [])])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promptgrid.testing",
            "--port",
            str(port),
            "--config",
            json.dumps(config),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        stdout = proc.stdout
        assert stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        # readline() cannot time out; a thread lets a child that hangs at start-up fail the call.
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=startup_timeout)
        except queue.Empty:
            raise RuntimeError("fault server did not start in time") from None
        if not line.startswith("READY "):
            raise RuntimeError(f"fault server failed to start (exit {proc.wait(5)})")
        yield RemoteFaultServer(line.split()[1], proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
