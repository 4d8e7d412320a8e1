"""What operators meet, through the real command in child processes: SIGTERM and SIGHUP, the
printed resume command, two processes on one store, a full disk, damaged and read-only stores.

Each run talks to the fault server over the real openai SDK; the server counts every request,
so "never paid twice" is a count, not a belief.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import promptgrid
from processes import CLI, KEY, integrity, rows, run_status, start, wait_for, wait_for_line
from promptgrid.testing import FaultServer

pytestmark = pytest.mark.slow


def experiment(write_yaml, cells: int, concurrency: int = 4, name: str = "ops") -> Path:
    """An experiment for the openai provider; the endpoint comes from --base-url."""
    return write_yaml(
        f"""\
        name: {name}
        provider: openai
        prompts:
          p: "question {{{{ i }}}}"
        vars:
          i: [{", ".join(str(i) for i in range(cells))}]
        params: {{model: m, max_tokens: 5}}
        limits: {{max_concurrency: {concurrency}, rpm: 60000, tpm: 100000000}}
        retry: {{max_attempts: 3, max_wait_s: 0.05}}
        """,
        f"{name}.yaml",
    )


def run_id_of(text: str) -> str:
    """The run id in a ``resume with: ...`` line."""
    line = next(line for line in text.splitlines() if line.startswith("resume with: "))
    words = shlex.split(line.removeprefix("resume with: "))
    return words[words.index("--resume") + 1]


@pytest.mark.parametrize(
    ("signum", "code"),
    [
        pytest.param(signal.SIGTERM, 143, id="SIGTERM"),
        pytest.param(signal.SIGHUP, 129, id="SIGHUP"),
    ],
)
def test_sigterm_and_sighup_stop_like_ctrl_c_and_the_printed_command_resumes(
    write_yaml, tmp_path: Path, signum: int, code: int
) -> None:
    cells = 60
    with FaultServer(latency_s=0.2) as server:
        path = experiment(write_yaml, cells)
        results = tmp_path / "somewhere else"  # a path that needs quoting
        proc = start("run", str(path), "--base-url", server.base_url, "--results-dir",
                     str(results), cwd=tmp_path)  # fmt: skip
        wait_for(lambda: rows(results) >= 4)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == code, err
        stats = server.stats()
        assert stats["in_flight"] == 0 and "Traceback" not in err
        # Every call that was sent finished within the grace period and was saved.
        assert rows(results) == stats["by_outcome"]["200"] < cells
        run_id = run_id_of(err)
        assert run_status(results, run_id) == "interrupted"
        server.configure(latency_s=0.01)  # the rest need not be slow
        # The printed command, pasted as is (no --base-url: the run remembers where it went).
        command = next(line for line in err.splitlines() if line.startswith("resume with: "))
        args = shlex.split(command.removeprefix("resume with: "))
        assert args[0] == "promptgrid" and "--base-url" not in args
        resumed = subprocess.run(
            [*CLI, *args[1:], "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
            env={**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
            timeout=60,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert server.stats()["requests"] == cells  # nothing paid twice, nothing sent elsewhere
    assert run_status(results, run_id) == "finished" and integrity(results) == "ok"


def test_a_resume_that_would_send_elsewhere_is_refused(write_yaml, tmp_path: Path) -> None:
    with FaultServer() as server:
        path = experiment(write_yaml, 3)
        results = tmp_path / "r"
        server.script(["quota"])
        first = start("run", str(path), "--base-url", server.base_url, "--results-dir",
                      str(results), cwd=tmp_path)  # fmt: skip
        _, err = first.communicate(timeout=60)
        assert first.returncode == 1, err  # stopped by the quota, resumable
        run_id = run_id_of(err)
        other = start("run", str(path), "--resume", run_id, "--base-url", "http://127.0.0.1:9/v1",
                      "--results-dir", str(results), cwd=tmp_path)  # fmt: skip
        _, err = other.communicate(timeout=60)
    assert other.returncode == 2 and "--base-url" in err and server.base_url in err
    assert "Traceback" not in err


def test_one_process_owns_a_run(write_yaml, tmp_path: Path) -> None:
    with FaultServer(stall_s=120) as server:
        server.script(
            ["stall"]
        )  # the first process's first call hangs: it owns the run until killed
        path = experiment(write_yaml, 40)
        results = tmp_path / "r"
        first = start("run", str(path), "--base-url", server.base_url, "--results-dir",
                      str(results), cwd=tmp_path)  # fmt: skip
        wait_for(lambda: rows(results) >= 1)
        second = start("run", str(path), "--resume", "--results-dir", str(results), cwd=tmp_path)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 5, err
        assert f"process {first.pid}" in err and "Traceback" not in err
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
        runs = subprocess.run([*CLI, "runs", "--results-dir", str(results)], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert "interrupted" in runs.stdout, runs  # its owner is dead: not "running" forever
        third = start("run", str(path), "--resume", "--results-dir", str(results), cwd=tmp_path)
        _, err = third.communicate(timeout=60)
    assert third.returncode == 0, err
    assert rows(results, "ok") == 40


def test_two_processes_on_one_grid_pay_once(write_yaml, tmp_path: Path) -> None:
    cells = 40
    with FaultServer(latency_s=0.1) as server:
        path = experiment(write_yaml, cells, concurrency=8)
        results = tmp_path / "r"
        args = ("run", str(path), "--base-url", server.base_url, "--results-dir", str(results))
        first = start(*args, cwd=tmp_path)
        wait_for(lambda: server.stats()["requests"] >= 1)
        second = start(*args, cwd=tmp_path)
        outs = [p.communicate(timeout=120) for p in (first, second)]
        assert [first.returncode, second.returncode] == [0, 0], outs
        stats = server.stats()
    assert stats["requests"] == cells  # each request paid for once, by one of the two
    frames = [promptgrid.load(line.split()[1].rstrip(":"), results_dir=results)
              for line in (out for out, _ in outs)]  # fmt: skip
    for frame in frames:
        assert list(frame["response"]) == [f"echo: question {i}" for i in range(cells)]


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def test_a_full_disk_ends_the_run_in_seconds_and_resume_finishes_it(
    write_yaml, tmp_path: Path
) -> None:
    results = tmp_path / "tiny"
    if shutil.which("mount") is None or not _mount_tmpfs(results, "1m"):
        pytest.skip("needs permission to mount a 1 MB tmpfs (run as root) to fill a real disk")
    try:
        path = write_yaml(
            'name: full\nprovider: echo\nprompts: {p: "{{ i }} ' + "x" * 1000 + '"}\n'
            f"vars: {{i: [{', '.join(map(str, range(3000)))}]}}\nparams: {{model: m}}\n",
            "full.yaml",
        )
        proc = start("run", str(path), "--results-dir", str(results), cwd=tmp_path)
        _, err = proc.communicate(timeout=60)  # a hang fails here
        assert proc.returncode == 5, err
        assert "full" in err and "promptgrid.sqlite" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        saved = rows(results)
        assert 0 < saved < 3000 and integrity(results) == "ok"
        subprocess.run(["mount", "-o", "remount,size=64m", str(results)], check=True)
        again = start("run", str(path), "--resume", "--results-dir", str(results), cwd=tmp_path)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert rows(results, "ok") == 3000
    finally:
        subprocess.run(["umount", "-l", str(results)], capture_output=True)


def test_damaged_store_is_one_message_for_every_command(animals: Path, tmp_path: Path) -> None:
    results = tmp_path / "r"
    done = start("run", str(animals), "--results-dir", str(results), cwd=tmp_path)
    done.communicate(timeout=60)
    store = results / "promptgrid.sqlite"
    with store.open("r+b") as f:
        f.seek(4096)
        f.write(b"\xde\xad" * 4096)
    for args in (["runs"], ["show"], ["export", "--format", "csv", "-o", str(tmp_path / "x")],
                 ["run", str(animals), "--resume"]):  # fmt: skip
        proc = start(*args, "--results-dir", str(results), cwd=tmp_path)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 5, (args, err)
        assert "damaged" in err and "Traceback" not in err, (args, err)


def test_a_read_only_store_can_still_be_read(animals: Path, tmp_path: Path) -> None:
    results = tmp_path / "r"
    done = start("run", str(animals), "--results-dir", str(results), cwd=tmp_path)
    out, _ = done.communicate(timeout=60)
    run_id = out.split()[1].rstrip(":")
    readonly = tmp_path / "ro"
    if os.geteuid() == 0:  # root writes through permissions: use a read-only mount instead
        readonly.mkdir()
        mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(results), str(readonly)],
                                 capture_output=True)  # fmt: skip
        if mounted.returncode != 0:
            pytest.skip(f"as root, needs a read-only bind mount: {mounted.stderr!r}")
    else:
        readonly = results
        for path in [results, *results.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        with pytest.raises(OSError):  # it really is read-only
            (readonly / "probe").write_text("x")
        for args in (["runs"], ["show", run_id], ["export", run_id, "-o", str(tmp_path / "a.csv")]):
            proc = start(*args, "--results-dir", str(readonly), cwd=tmp_path)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, (args, err)
        assert (tmp_path / "a.csv").exists()
    finally:
        if readonly != results:
            subprocess.run(["umount", "-l", str(readonly)], capture_output=True)


def test_show_with_a_misspelt_column_says_which(animals: Path, tmp_path: Path) -> None:
    results = tmp_path / "r"
    start("run", str(animals), "--results-dir", str(results), cwd=tmp_path).communicate(timeout=60)
    proc = start("show", "--columns", "prompt,aminal", "--results-dir", str(results), cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "'aminal' (did you mean 'animal'?)" in err
    assert "Traceback" not in err


def test_the_progress_line_is_not_repeated_on_ctrl_c(write_yaml, tmp_path: Path) -> None:
    with FaultServer(latency_s=0.2) as server:
        path = experiment(write_yaml, 40)
        results = tmp_path / "r"
        proc = start("run", str(path), "--base-url", server.base_url, "--results-dir",
                     str(results), "--progress", cwd=tmp_path, progress=True)  # fmt: skip
        wait_for(lambda: rows(results) >= 4)
        proc.send_signal(signal.SIGINT)
        seen = wait_for_line(proc, "resume with")
        _, rest = proc.communicate(timeout=30)
    err = seen + rest
    assert proc.returncode == 130, err
    assert err.count("calls/s") == 1, err  # one final progress line, not one per redraw


def test_a_run_is_finished_only_once_its_files_exist(animals: Path, tmp_path: Path) -> None:
    results = tmp_path / "r"
    results.mkdir()
    (results / "animals").write_text("a file where the run's folder should go")
    first = start("run", str(animals), "--results-dir", str(results), cwd=tmp_path)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 5, err
    assert "could not write parquet, csv" in err and "Traceback" not in err
    run_id = run_id_of_export(err)
    assert run_status(results, run_id) == "interrupted" and rows(results, "ok") == 12
    (results / "animals").unlink()
    again = start("run", str(animals), "--resume", "--results-dir", str(results), cwd=tmp_path)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert run_status(results, run_id) == "finished"
    assert (results / "animals" / run_id / "results.csv").is_file()


def run_id_of_export(text: str) -> str:
    """The run id in an export failure ("could not write ... of run RUN_ID ...")."""
    return text.split(" of run ", 1)[1].split()[0].rstrip(":")
