"""promptgrid in a real Jupyter kernel (ipykernel): the quickstart notebook, ``run`` and
``await arun`` in cells, the progress line, and the stop button.

The kernel runs this interpreter (a kernelspec written for the test comes first on
JUPYTER_PATH), with no OPENAI_API_KEY: everything is offline. A slow run is an echo run under a
10-requests-per-minute limit: 10 calls pass at once, the 11th waits 6 s.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager, start_new_kernel
from nbclient import NotebookClient

from promptgrid.store import Store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
KERNEL = "python3"

ANIMALS = """
import asyncio, promptgrid
exp = promptgrid.Experiment(
    name="animals", provider="echo",
    prompts={"plain": "Please give me five {{ animal }} names", "terse": "{{ animal }} names?"},
    vars={"animal": ["dog", "cat", "horse"]},
    params={"model": "gpt-4o-mini", "temperature": [0.0, 1.0]},
)
"""
SLOW = """
import promptgrid
slow = promptgrid.Experiment(
    name="slow", provider="echo", prompts={"p": "Name number {{ i }}"},
    vars={"i": list(range(40))}, params={"model": "m"}, limits={"rpm": 10},
)
"""

pytestmark = pytest.mark.slow  # starts a real Jupyter kernel


@pytest.fixture(scope="module")
def kernelspec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A ``python3`` kernel that runs this interpreter, whatever else is installed."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "promptgrid tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))
        patch.delenv("OPENAI_API_KEY", raising=False)
        patch.delenv("OPENAI_BASE_URL", raising=False)
        yield


@dataclass
class Cell:
    """What one execution produced: its reply and its iopub messages."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return bool(self.reply["status"] == "ok")

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of("stream")
                       if m["content"]["name"] == "stdout")  # fmt: skip

    def of(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    def check(self) -> Cell:
        assert self.ok, f"{self.reply.get('ename')}: {self.reply.get('evalue')}"
        return self


class Kernel:
    """A started ipykernel and a blocking client, with cell-level helpers."""

    def __init__(self, cwd: Path) -> None:
        self.km: KernelManager
        self.km, self.kc = start_new_kernel(kernel_name=KERNEL, cwd=str(cwd), startup_timeout=30)
        self._messages: dict[str, list[dict[str, Any]]] = {}

    def submit(self, code: str) -> str:
        return str(self.kc.execute(textwrap.dedent(code)))

    def wait_for(
        self, msg_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
    ) -> list[dict[str, Any]]:
        """Read iopub until ``done(messages of msg_id)``."""
        messages = self._messages.setdefault(msg_id, [])
        deadline = time.monotonic() + timeout
        while not done(messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"cell {msg_id} still running after {timeout}s")
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            self._messages.setdefault(msg["parent_header"].get("msg_id", ""), []).append(msg)
        return messages

    def finish(self, msg_id: str, timeout: float = 20) -> Cell:
        messages = self.wait_for(msg_id, _idle, timeout)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return Cell(reply["content"], messages)

    def run(self, code: str, timeout: float = 20) -> Cell:
        return self.finish(self.submit(code), timeout)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _idle(messages: list[dict[str, Any]]) -> bool:
    return any(
        m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in messages
    )


def _progress_started(messages: list[dict[str, Any]]) -> bool:
    return any(m["msg_type"] == "display_data" for m in messages)


@pytest.fixture(scope="module")
def kernel(kernelspec: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    k = Kernel(tmp_path_factory.mktemp("kernel-cwd"))
    try:
        yield k
    finally:
        k.close()


def saved(results: Path, at_least: int, timeout: float = 10) -> dict[str, int]:
    """Wait until the newest run in ``results`` has ``at_least`` rows committed."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while counts.get("ok", 0) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
        with Store.in_dir(results) as store:
            runs = store.runs()
            counts = store.counts(runs[0].run_id) if runs else {}
    return counts


# ---------------------------------------------------------------------------- the notebook


def test_quickstart_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


def test_quickstart_runs_in_a_kernel(kernelspec: None, tmp_path: Path) -> None:
    # The notebook reads ../experiments and writes ../results, relative to its folder.
    (tmp_path / "examples").mkdir()
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=30, kernel_name=KERNEL,
        resources={"metadata": {"path": str(tmp_path / "examples")}},
    )  # fmt: skip
    client.execute()  # raises CellExecutionError if a cell fails

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    text = [o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs]
    assert any("12 of 12 rows came from the cache" in t for t in text)
    assert any("Set OPENAI_API_KEY" in t for t in text)  # the OpenAI cell did not call out
    html = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("white-space:pre-wrap" in h and "echo: Please give me five dog names" in h
               for h in html)  # fmt: skip
    with Store.in_dir(tmp_path / "results") as store:
        assert {r.experiment for r in store.runs()} == {"animal-names", "animal-names-in-code"}


# ---------------------------------------------------------------------------- run / arun


def test_run_and_arun_in_kernel_cells(kernel: Kernel, tmp_path: Path) -> None:
    results = str(tmp_path / "results")
    check = "print(len(df), df['status'].eq('ok').all(), int(df['cached'].sum()))"
    kernel.run(ANIMALS).check()
    where = kernel.run("import sys; print(sys.executable, asyncio.get_running_loop().is_running())")
    # This interpreter, and a running loop: run() below cannot use asyncio.run.
    assert where.check().stdout.split() == [sys.executable, "True"]

    first = kernel.run(f"df = promptgrid.run(exp, results_dir={results!r})\n{check}").check()
    assert first.stdout.split() == ["12", "True", "0"]
    again = kernel.run(
        f"df = promptgrid.run(exp, results_dir={results!r}, use_cache=False)\n{check}"
    ).check()
    assert again.stdout.split() == ["12", "True", "0"]
    awaited = kernel.run(f"df = await promptgrid.arun(exp, results_dir={results!r})\n{check}")
    assert awaited.check().stdout.split() == ["12", "True", "12"]
    method = kernel.run(f"df = exp.run(results_dir={results!r}, progress=False)\n{check}")
    assert method.check().stdout.split() == ["12", "True", "12"]
    amethod = kernel.run(f"df = await exp.arun(results_dir={results!r}, progress=False)\n{check}")
    assert amethod.check().stdout.split() == ["12", "True", "12"]
    with Store.in_dir(results) as store:
        assert [r.status for r in store.runs()] == ["finished"] * 5


def test_progress_is_one_display_updated_in_place(kernel: Kernel, tmp_path: Path) -> None:
    kernel.run(ANIMALS).check()
    for call in ("promptgrid.run", "await promptgrid.arun"):
        cell = kernel.run(f"df = {call}(exp, results_dir={str(tmp_path)!r}, use_cache=False)")
        cell.check()
        shown = cell.of("display_data")
        assert len(shown) == 1, shown
        display_id = shown[0]["content"]["transient"]["display_id"]
        updates = cell.of("update_display_data")
        assert updates and {u["content"]["transient"]["display_id"] for u in updates} == {
            display_id
        }
        assert "12/12" in updates[-1]["content"]["data"]["text/plain"]
        assert not cell.of("stream", "error")  # no warnings, no text


def test_run_inside_the_kernel_uses_the_openai_client_in_its_own_loop(
    kernel: Kernel, tmp_path: Path
) -> None:
    from promptgrid.testing import FaultServer

    results = str(tmp_path)
    with FaultServer() as server:
        kernel.run(ANIMALS).check()  # no key: a loopback base_url needs none
        call = f"exp, provider='openai', base_url={server.base_url!r}, results_dir={results!r}"
        check = "print(len(df), df['status'].eq('ok').all(), int(df['cached'].sum()))"
        # Twice with run() (one loop thread, a new client each time), then in the kernel's loop.
        for code in (f"df = promptgrid.run({call}, use_cache=False)",
                     f"df = promptgrid.run({call}, use_cache=False)",
                     f"df = await promptgrid.arun({call}, use_cache=False)"):  # fmt: skip
            cell = kernel.run(f"{code}\n{check}")
            assert cell.check().stdout.split() == ["12", "True", "0"]
        assert server.stats()["requests"] == 36


# ---------------------------------------------------------------------------- the stop button


def test_stop_button_during_run_keeps_rows_and_resumes(kernel: Kernel, tmp_path: Path) -> None:
    results = tmp_path / "results"
    kernel.run(SLOW).check()
    msg_id = kernel.submit(f"df = promptgrid.run(slow, results_dir={str(results)!r}, grace_s=0.5)")
    kernel.wait_for(msg_id, _progress_started)
    assert saved(results, 10)["ok"] == 10
    kernel.km.interrupt_kernel()  # what the stop button does: SIGINT to the kernel
    # Unstopped, the 30 cells left would take 3 minutes at 10 rpm: ending within the timeout
    # means the stop worked.
    cell = kernel.finish(msg_id, timeout=60)
    assert cell.reply["ename"] == "KeyboardInterrupt"
    assert "interrupted with 10 of 40 cells saved" in cell.reply["evalue"]
    assert "resume=True" in cell.reply["evalue"]
    with Store.in_dir(results) as store:
        (run,) = store.runs()
        assert run.status == "interrupted"
        assert store.counts(run.run_id)["ok"] == 10

    kept = kernel.run(f"print(len(promptgrid.load(results_dir={str(results)!r})))").check()
    assert kept.stdout.strip() == "10"
    resumed = kernel.run(
        f"df = promptgrid.run(slow, results_dir={str(results)!r}, resume=True, rpm=60000)\n"
        "print(len(df), df['status'].eq('ok').all(), df['run_id'].nunique(), df['run_id'][0])"
    ).check()
    assert resumed.stdout.split() == ["40", "True", "1", run.run_id]
    with Store.in_dir(results) as store:
        assert [r.status for r in store.runs()] == ["finished"]


def test_stop_button_during_await_arun_keeps_rows_and_resumes(
    kernel: Kernel, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    kernel.run(SLOW).check()
    msg_id = kernel.submit(f"df = await promptgrid.arun(slow, results_dir={str(results)!r})")
    kernel.wait_for(msg_id, _progress_started)
    assert saved(results, 10)["ok"] == 10
    kernel.km.interrupt_kernel()
    # ipykernel cancels an awaiting cell (CancelledError); the progress timer wakes the loop.
    # Unstopped, the run would take 3 minutes: ending within the timeout means it stopped.
    cell = kernel.finish(msg_id, timeout=60)
    assert cell.reply["ename"] in ("CancelledError", "KeyboardInterrupt")
    with Store.in_dir(results) as store:
        (run,) = store.runs()
        assert run.status == "interrupted"
        assert store.counts(run.run_id)["ok"] == 10

    resumed = kernel.run(
        f"df = await promptgrid.arun(slow, results_dir={str(results)!r}, resume=True, rpm=60000)\n"
        "print(len(df), df['status'].eq('ok').all(), df['run_id'][0])"
    ).check()
    assert resumed.stdout.split() == ["40", "True", run.run_id]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_in_a_script_stops_the_same_way(tmp_path: Path) -> None:
    results = tmp_path / "results"
    Store.in_dir(results).close()  # created here, so that polling it cannot race its creation
    then = f"""
try:
    promptgrid.run(slow, results_dir={str(results)!r}, grace_s=0.5)
except KeyboardInterrupt as exc:
    print("stopped:", exc, flush=True)
    df = promptgrid.run(slow, results_dir={str(results)!r}, resume=True, rpm=60000)
    print("resumed:", len(df), df["run_id"].nunique())
"""
    child = subprocess.Popen([sys.executable, "-c", SLOW + then], stdout=subprocess.PIPE, text=True)
    try:
        assert saved(results, 10)["ok"] == 10
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 0
    assert "interrupted with 10 of 40 cells saved" in out
    assert "resumed: 40 1" in out
