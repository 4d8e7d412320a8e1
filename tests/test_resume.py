"""Never lose a result, never pay twice: kill -9 and resume, Ctrl-C, retry of error rows, cache.

Runs go through the real CLI in a subprocess, over the real openai SDK, against the fault server
(which counts every request it receives).
"""

from __future__ import annotations

import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import promptgrid
from processes import KEY, integrity, rows, start, wait_for, wait_for_line
from promptgrid.testing import FaultServer

pytestmark = pytest.mark.slow


def experiment(write_yaml, server: FaultServer, cells: int, concurrency: int) -> Path:
    # rpm and tpm are declared (generously), so nothing is learned from a first probe call.
    return write_yaml(
        f"""\
        name: resumable
        provider: openai
        providers:
          openai: {{base_url: "{server.base_url}"}}
        prompts:
          p: "question {{{{ i }}}}"
        vars:
          i: [{", ".join(str(i) for i in range(cells))}]
        params: {{model: m, max_tokens: 5}}
        limits: {{max_concurrency: {concurrency}, timeout_s: 60, rpm: 60000, tpm: 100000000}}
        retry: {{max_attempts: 3, max_wait_s: 0.05}}
        """
    )


@pytest.mark.parametrize("kill_after", [0, 40, 110])
def test_sigkill_then_resume_pays_only_for_calls_in_flight(
    write_yaml, tmp_path: Path, kill_after: int
) -> None:
    cells = 120
    with FaultServer(latency_s=0.02) as server:
        path = experiment(write_yaml, server, cells, concurrency=8)
        results = tmp_path / "results"
        proc = start("run", str(path), "--results-dir", str(results), cwd=tmp_path)
        if kill_after:
            wait_for(lambda: rows(results) >= kill_after)
        else:
            wait_for(lambda: server.stats()["requests"] >= 1)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        sent_at_kill = server.stats()["requests"]
        committed_at_kill = rows(results)
        assert integrity(results) == "ok"

        resumed = start("run", str(path), "--results-dir", str(results), "--resume", cwd=tmp_path)
        _, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
        stats = server.stats()
    assert rows(results, "ok") == cells
    in_flight = sent_at_kill - committed_at_kill
    assert cells <= stats["requests"] <= cells + in_flight
    assert integrity(results) == "ok"
    with closing(sqlite3.connect(results / "promptgrid.sqlite")) as db:
        assert db.execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "finished")
    df = promptgrid.load(results_dir=results)
    assert list(df["response"]) == [f"echo: question {i}" for i in range(cells)]
    for blob in (p for p in results.rglob("*") if p.is_file()):
        assert KEY.encode() not in blob.read_bytes()


def test_first_ctrl_c_finishes_calls_in_flight_and_prints_resume(
    write_yaml, tmp_path: Path
) -> None:
    with FaultServer(latency_s=0.2) as server:
        path = experiment(write_yaml, server, 200, concurrency=5)
        results = tmp_path / "results"
        proc = start("run", str(path), "--results-dir", str(results), cwd=tmp_path)
        wait_for(lambda: rows(results) >= 10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        sent = server.stats()["requests"]
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert rows(results) == sent < 200  # every call that was sent was saved, none lost
    run_id = out.split()[1].rstrip(":")
    with closing(sqlite3.connect(results / "promptgrid.sqlite")) as db:
        assert db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone() == (
            "interrupted",
        )


def test_second_ctrl_c_exits_at_once(write_yaml, tmp_path: Path) -> None:
    with FaultServer(latency_s=30) as server:
        path = experiment(write_yaml, server, 50, concurrency=5)
        results = tmp_path / "results"
        proc = start("run", str(path), "--results-dir", str(results), cwd=tmp_path)
        wait_for(lambda: server.stats()["requests"] >= 5)
        proc.send_signal(signal.SIGINT)
        wait_for_line(proc, "stopping")  # the first press was handled: the second is separate
        proc.send_signal(signal.SIGINT)
        # The calls on the wire take 30 s: exiting within the timeout means they were cancelled.
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert integrity(results) == "ok"


def test_retry_reruns_only_error_rows(write_yaml, tmp_path: Path) -> None:
    with FaultServer() as server:
        path = experiment(write_yaml, server, 6, concurrency=2)
        results = tmp_path / "results"
        server.script_for("question 2", ["400"])
        server.script_for("question 4", ["503", "503", "503"])
        first = start("run", str(path), "--results-dir", str(results), cwd=tmp_path)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 3, err
        assert "bad_request" in err and "server_error" in err
        run_id = out.split()[1].rstrip(":")
        before = server.stats()["requests"]
        again = start("retry", run_id, "--results-dir", str(results), cwd=tmp_path)
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        assert server.stats()["requests"] - before == 2  # only the two error rows were sent
    df = promptgrid.load(run_id, results_dir=results)
    assert (df["status"] == "ok").all() and len(df) == 6
    with closing(sqlite3.connect(results / "promptgrid.sqlite")) as db:
        history = db.execute(
            "SELECT idx, status FROM attempts WHERE run_id = ? AND idx IN (2, 4) "
            "ORDER BY idx, rowid",
            (run_id,),
        ).fetchall()
    assert history == [(2, "error"), (2, "ok"), (4, "error"), (4, "error"), (4, "error"), (4, "ok")]


def test_cache_across_runs_and_experiments_with_repeats(write_yaml, tmp_path: Path,
                                                        monkeypatch) -> None:  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FaultServer() as server:
        base = {"prompts": {"p": "hello {{ who }}"}, "vars": {"who": ["a", "b"]},
                "params": {"model": "m"}, "repeats": 2, "provider": "openai",
                "providers": {"openai": {"base_url": server.base_url}}}  # fmt: skip
        first = promptgrid.run(promptgrid.Experiment(name="one", **base), results_dir=tmp_path,
                               progress=False)  # fmt: skip
        assert server.stats()["requests"] == 4 and not first["cached"].any()
        other = promptgrid.Experiment(name="two", **{**base, "vars": {"who": ["a", "b", "c"]}})
        plan = promptgrid.plan(other, results_dir=tmp_path)
        assert (plan.total, plan.cached, plan.to_send) == (6, 4, 2)
        second = promptgrid.run(other, results_dir=tmp_path, progress=False)
        assert server.stats()["requests"] == 6  # only the two new cells were paid for
        assert list(second["cached"]) == [True, True, True, True, False, False]
        assert (second.loc[second["cached"], "cost_usd"] == 0).all()


def test_errors_are_never_cached(write_yaml, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FaultServer() as server:
        exp = promptgrid.Experiment(
            prompts={"p": "hi"}, params={"model": "m"}, provider="openai",
            providers={"openai": {"base_url": server.base_url}},
        )  # fmt: skip
        server.script(["400"])
        first = promptgrid.run(exp, results_dir=tmp_path, progress=False)
        assert list(first["status"]) == ["error"]
        second = promptgrid.run(exp, results_dir=tmp_path, progress=False)
        assert list(second["status"]) == ["ok"] and not second["cached"].any()
        assert server.stats()["requests"] == 2
