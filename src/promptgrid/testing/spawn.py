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

    def _act(self, action: str, data: Any = None) -> Any:
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(
            f"{self._root}/_pg/{action}", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with _NO_PROXY.open(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # the server's validation error, as a local one
            with exc:
                raise ValueError(json.loads(exc.read())["error"]["message"]) from None


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
