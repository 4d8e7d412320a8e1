"""The merge: N shards' stores joined into one run equal to the run on one machine, cell for cell;
what is missing named; the same shard twice counted once; other experiments and running shards
refused; the merged run resumed, retried, exported; the cache shared; the docs' recipes run
as written."""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import promptgrid
from processes import integrity, rows, start, wait_for
from promptgrid.cli import main
from promptgrid.errors import RunOwned
from promptgrid.store import Owner, Store, leases
from promptgrid.store import merge as store_merge
from promptgrid.testing import FaultServer

#: Columns that differ between two runs of one grid whatever they did.
VOLATILE = ["run_id", "latency_s", "ttft_s", "tokens_per_s"]
ROOT = Path(__file__).parents[1]
PAGE = ROOT / "docs" / "shards.md"

TWINS = {
    "name": "twins",
    "provider": "echo",
    # prompt b ignores the animal: its four cells per model and repeat are one request
    "prompts": {"a": "name a {{ animal }}", "b": "a constant question"},
    "vars": {"animal": ["dog", "cat", "cow", "owl"]},
    "params": {"model": ["m1", "m2"], "max_tokens": 20},
    "repeats": 2,
    "scores": {
        "said": {"contains": "echo"},
        "judged": {
            "judge": {"rubric": "Grade: {{ answer }}", "model": "j", "params": {"max_tokens": 20}}
        },
    },
}
#: The same grid without scores (scoring starts a worker process: a second a run).
PLAIN = {**TWINS, "scores": {}}


def shards(tmp_path: Path, count: int, exp: dict[str, Any] = PLAIN, only: Any = None) -> list[Path]:
    """Run the shards of ``exp`` (those in ``only``), each in its own results folder."""
    folders = []
    for i in only if only is not None else range(count):
        folder = tmp_path / f"shard-{i}"
        promptgrid.run(exp, results_dir=folder, shard=(i, count), progress=False)
        folders.append(folder)
    return folders


def table(folder: Path, run_id: str | None = None) -> pd.DataFrame:
    return promptgrid.load(run_id, results_dir=folder).drop(columns=VOLATILE)


def count(folder: Path, sql: str) -> int:
    with closing(sqlite3.connect(folder / "promptgrid.sqlite")) as db:
        return int(db.execute(sql).fetchone()[0])


def cli(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``promptgrid ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_a_merge_of_shards_equals_the_run_on_one_machine(tmp_path: Path, capsys) -> None:
    whole = promptgrid.run(TWINS, results_dir=tmp_path / "one", progress=False)
    merged = promptgrid.merge(shards(tmp_path, 2, TWINS), output=tmp_path / "merged")
    assert merged.status == "finished" and merged.exit_code == 0
    assert merged.counts["ok"] == len(whole) == 32 and not merged.missing
    together = table(tmp_path / "merged", merged.run_id)
    # ids, inputs, answers, cache flags, attempts, scores and judges' verdicts: cell for cell
    pd.testing.assert_frame_equal(together, whole.drop(columns=VOLATILE))
    for kind in ("attempts", "judge_calls", "scores"):
        assert count(tmp_path / "merged", f"SELECT COUNT(*) FROM {kind}") == count(
            tmp_path / "one", f"SELECT COUNT(*) FROM {kind}"
        )
    # the files a run leaves, and the views that read the run
    folder = tmp_path / "merged" / "twins" / merged.run_id
    assert {p.name for p in merged.files} == {"results.parquet", "results.csv"}
    assert (
        pd.read_parquet(folder / "results.parquet")["cell_id"].tolist() == whole["cell_id"].tolist()
    )
    df = promptgrid.load(merged.run_id, results_dir=tmp_path / "merged")
    assert (
        "beats" in promptgrid.decide(df).report()
        or promptgrid.contrast(df, factor="prompt", score="said").report()
    )
    report = promptgrid.report(df, tmp_path / "r.html", results_dir=tmp_path / "merged")
    assert "complete: every cell has a result" in report.read_text()
    target = tmp_path / "all.jsonl"
    code, _, _ = cli("export", merged.run_id, "--results-dir", tmp_path / "merged",
                     "--format", "jsonl", "-o", target, capsys=capsys)  # fmt: skip
    assert code == 0 and len(target.read_text().splitlines()) == 32


def test_the_same_shard_twice_counts_once(tmp_path: Path, capsys) -> None:
    folders = shards(tmp_path, 2)
    copy = tmp_path / "copy-of-shard-0"
    shutil.copytree(folders[0], copy)
    code, out, err = cli("merge", *folders, folders[0], copy, "-o", tmp_path / "m",
                         capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert "2 of 2 shards, 32 of 32 cells" in out
    assert "note: shard 0/2 given twice" in err
    assert count(tmp_path / "m", "SELECT COUNT(*) FROM results") == 32


def test_shards_of_different_experiments_are_refused(tmp_path: Path, capsys) -> None:
    (mine,) = shards(tmp_path, 2, only=[0])
    other = {**PLAIN, "name": "other"}
    (theirs,) = shards(tmp_path / "o", 2, exp=other, only=[1])
    edited = {**PLAIN, "vars": {"animal": ["dog", "cat"]}}  # another version of the grid
    (older,) = shards(tmp_path / "e", 2, exp=edited, only=[1])
    for folder, said in ((theirs, "different experiments"), (older, "different versions")):
        code, _, err = cli("merge", mine, folder, "-o", tmp_path / "m", capsys=capsys)
        assert code == 2 and said in err and "Traceback" not in err
        assert str(folder) in err
    assert not (tmp_path / "m").exists()  # nothing written
    code, _, err = cli("merge", mine, theirs, "-o", tmp_path / "m", "--experiment", "twins",
                       capsys=capsys)  # fmt: skip
    assert code == 2 and "holds no shard of experiment 'twins'" in err


def test_a_missing_shard_is_named_and_merging_again_completes_the_same_run(
    tmp_path: Path, capsys
) -> None:
    folders = shards(tmp_path, 3)
    code, out, err = cli("merge", *folders[:2], "-o", tmp_path / "m", capsys=capsys)
    assert code == 7
    assert "missing: shard 2/3" in err and "--shard 2/3" in err and "incomplete" in err
    run_id = out.split()[2]
    with Store.in_dir(tmp_path / "m", readonly=True) as store:
        info = store.run(run_id)
    assert info is not None and info.status == "incomplete" and info.total == 32
    code, out, _ = cli("runs", "--results-dir", tmp_path / "m", capsys=capsys)
    assert "incomplete" in out and "merged from 3 shards" in out
    for _ in range(2):  # the missing shard comes in; merging once more changes nothing
        code, out, err = cli("merge", *folders, "-o", tmp_path / "m", capsys=capsys)
        assert code == 0 and out.split()[2] == run_id, err
    assert count(tmp_path / "m", "SELECT COUNT(*) FROM results") == 32
    assert count(tmp_path / "m", "SELECT COUNT(*) FROM runs") == 1
    attempts = count(tmp_path / "m", "SELECT COUNT(*) FROM attempts")
    assert attempts == sum(count(f, "SELECT COUNT(*) FROM attempts") for f in folders)


def test_an_incomplete_merged_run_is_resumed_on_one_machine(tmp_path: Path) -> None:
    whole = promptgrid.run(PLAIN, results_dir=tmp_path / "one", progress=False)
    merged = promptgrid.merge(shards(tmp_path, 3, only=[0, 2]), output=tmp_path / "m")
    assert merged.status == "incomplete" and merged.missing == [1]
    done = promptgrid.run(PLAIN, results_dir=tmp_path / "m", resume=True, progress=False)
    assert done.attrs == {"run_id": merged.run_id, "status": "finished"}
    expected = whole.drop(columns=[*VOLATILE, "cached"])
    pd.testing.assert_frame_equal(table(tmp_path / "m").drop(columns="cached"), expected)


def test_merging_refuses_a_shard_being_run(tmp_path: Path, monkeypatch, capsys) -> None:
    folders = shards(tmp_path, 2)
    me = Owner.me()
    with Store.in_dir(folders[1]) as store:
        (info,) = store.runs()
        leases.acquire(store, info.run_id, me)  # this process executes it: a live lease
        code, _, err = cli("merge", *folders, "-o", tmp_path / "m", capsys=capsys)
        assert code == 5 and "still running" in err and str(os.getpid()) in err
        assert not (tmp_path / "m").exists()
        leases.release(store, info.run_id, me, "finished")
    # A shard that starts running between the choice and the copy: refused in the snapshot
    # the copy reads, before a row of it is read.
    real = store_merge.plan_merge

    def then_start(*args: Any) -> Any:
        plan = real(*args)
        with Store.in_dir(folders[0]) as store:
            leases.acquire(store, store.runs()[0].run_id, Owner.me())
        return plan

    monkeypatch.setattr(store_merge, "plan_merge", then_start)
    with pytest.raises(RunOwned, match="started running"):
        promptgrid.merge(folders, output=tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing written, not even the merged run


def test_a_merge_that_fails_half_way_leaves_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    """The disk fills up after the cache was copied: into a new folder, nothing is left (not
    the file the merge was building, nor the folder); into a store that exists, it is as it
    was (the source's transaction rolled back)."""
    folders = shards(tmp_path, 3)
    real = store_merge._copy_rows

    def then_fail(*args: Any) -> None:
        real(*args)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store_merge, "_copy_rows", then_fail)
    code, _, err = cli("merge", *folders, "-o", tmp_path / "new", capsys=capsys)
    assert code == 5 and "full" in err and "Traceback" not in err
    assert not (tmp_path / "new").exists()
    promptgrid.run({**PLAIN, "name": "other"}, results_dir=tmp_path / "kept", progress=False)
    tables = ("requests", "responses", "results", "attempts")
    before = [count(tmp_path / "kept", f"SELECT COUNT(*) FROM {t}") for t in tables]
    code, _, err = cli("merge", *folders, "-o", tmp_path / "kept", capsys=capsys)
    assert code == 5 and "full" in err
    assert [count(tmp_path / "kept", f"SELECT COUNT(*) FROM {t}") for t in tables] == before


def test_a_merge_into_a_new_folder_is_a_store_like_any(tmp_path: Path) -> None:
    """Built aside without a journal and its indexes made at the end: the same schema, WAL,
    intact, and the merged rows reachable through every index."""
    folders = shards(tmp_path, 2)
    merged = promptgrid.merge(folders, output=tmp_path / "m")
    with Store.in_dir(tmp_path / "one") as store:  # a store made the ordinary way
        expected = store.db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name")
        expected = expected.fetchall()
    with closing(sqlite3.connect(tmp_path / "m" / "promptgrid.sqlite")) as db:
        schema = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        assert schema == expected
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        found = db.execute(
            "SELECT COUNT(*) FROM attempts INDEXED BY attempts_cell WHERE run_id = ?",
            (merged.run_id,),
        ).fetchone()[0]
        answers = db.execute(
            "SELECT COUNT(*) FROM responses INDEXED BY responses_cell WHERE cell_id > ''"
        ).fetchone()[0]
    assert found == sum(count(f, "SELECT COUNT(*) FROM attempts") for f in folders) > 0
    assert answers == sum(count(f, "SELECT COUNT(*) FROM responses") for f in folders) > 0
    assert merged.counts["ok"] == 32
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["promptgrid.sqlite", "twins"]


def test_a_store_made_while_merging_aside_is_merged_into(tmp_path: Path, monkeypatch) -> None:
    """Another process makes the output's store while the merge builds its own aside: the
    merge is made into that store (never over it)."""
    folders = shards(tmp_path, 2)
    other = {**PLAIN, "name": "other"}
    real = store_merge._copy_source

    def meanwhile(*args: Any) -> None:
        if not (tmp_path / "m" / "promptgrid.sqlite").exists():
            promptgrid.run(other, results_dir=tmp_path / "m", progress=False)
        real(*args)

    monkeypatch.setattr(store_merge, "_copy_source", meanwhile)
    merged = promptgrid.merge(folders, output=tmp_path / "m")
    assert merged.status == "finished" and merged.counts["ok"] == 32
    with Store.in_dir(tmp_path / "m", readonly=True) as store:
        assert sorted(info.experiment for info in store.runs()) == ["other", "twins"]


def test_a_merged_store_is_a_cache_for_every_machine(tmp_path: Path) -> None:
    folders = shards(tmp_path, 2)
    elsewhere = {**PLAIN, "name": "unrelated", "prompts": {"c": "{{ animal }}?"}}
    promptgrid.run(elsewhere, results_dir=folders[1], progress=False)  # not a shard
    promptgrid.merge(folders, output=tmp_path / "m")
    for exp in (PLAIN, elsewhere):  # every answer of every folder is in the merged store
        df = promptgrid.run(exp, results_dir=tmp_path / "m", progress=False)
        assert df["cached"].all()
    # an answer already there is kept once, however often it is merged in
    answers = count(tmp_path / "m", "SELECT COUNT(*) FROM responses")
    promptgrid.merge([*folders, *folders], output=tmp_path / "m")
    assert count(tmp_path / "m", "SELECT COUNT(*) FROM responses") == answers


def test_a_shard_resumed_keeps_its_part(tmp_path: Path) -> None:
    folder = tmp_path / "both"  # one machine ran shards 1 and 0, both stopped half-way
    for spec in ("1/3", "0/3"):
        promptgrid.run(PLAIN, results_dir=folder, shard=spec, progress=False)
    with Store.in_dir(folder) as store:
        zero, one = store.runs()  # newest first
        for info in (zero, one):
            store.db.execute(
                "DELETE FROM results WHERE run_id = ?1 AND idx IN "
                "(SELECT idx FROM results WHERE run_id = ?1 LIMIT 4)",
                (info.run_id,),
            )
            store.db.execute(
                "UPDATE runs SET status = 'interrupted' WHERE run_id = ?", (info.run_id,)
            )
    # --resume with the shard continues that shard's run, not the newest unfinished one
    df = promptgrid.run(PLAIN, results_dir=folder, resume=True, shard="1/3", progress=False)
    assert df.attrs == {"run_id": one.run_id, "status": "finished"} and len(df) == one.total
    df = promptgrid.run(PLAIN, results_dir=folder, resume=True, progress=False)  # the other
    assert df.attrs == {"run_id": zero.run_id, "status": "finished"} and len(df) == zero.total
    with pytest.raises(promptgrid.UsageError, match="shard 0/3, not shard 2/3"):
        promptgrid.run(PLAIN, results_dir=folder, run_id=zero.run_id, shard="2/3")


# ------------------------------------------------------------------------------ recipes


def recipe(title: str) -> str:
    """The code blocks of the docs' shards page under the heading ``title``."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("# Shards: one grid across machines") :]
    part = section[section.index(title) :]
    part = re.split(r"\n##+ ", part[1:])[0]
    return "\n".join(re.findall(r"```\w*\n(.*?)```", part, re.S))


def commands(text: str) -> list[str]:
    """The promptgrid commands in a recipe (continued lines joined)."""
    joined = text.replace("\\\n", " ")
    found = re.findall(r"promptgrid (?:run|merge)[^\"'\n\]]*", joined)
    return [re.sub(r"\s+", " ", command).strip() for command in found]


def shell(command: str, environ: dict[str, str], capsys) -> None:
    """Run a recipe's command as a shell would: variables expanded, globs matched."""
    args = []
    for word in shlex.split(command)[1:]:
        word = re.sub(r"\$\{?(\w+)\}?", lambda m: environ[m[1]], word)
        args += sorted(glob.glob(word)) if "*" in word else [word]
    code, _, err = cli(*args, capsys=capsys)
    assert code == 0, (command, err)


def container_command(doc: dict[str, Any]) -> str:
    container = doc["spec"]["template"]["spec"]["containers"][0]
    return " ".join([*container["command"], *container.get("args", [])])


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A checkout's working folder: the example experiment at its path."""
    (tmp_path / "experiments").mkdir()
    shutil.copy(ROOT / "experiments" / "animal_names.yaml", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def merged_ok(folder: Path, shards_count: int) -> None:
    with Store.in_dir(folder, readonly=True) as store:
        (info,) = store.runs()
    assert info.status == "finished" and info.options["merged"]["count"] == shards_count


def test_the_kubernetes_recipe_runs_as_written(project: Path, monkeypatch, capsys) -> None:
    docs = list(yaml.safe_load_all(recipe("## Kubernetes")))
    job = next(d for d in docs if d["spec"].get("completionMode") == "Indexed")
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    (run,) = commands(container_command(job))
    results = project / "results"
    run = run.replace("/results", str(results))
    for index in range(job["spec"]["completions"]):
        for name, value in {**env, "JOB_COMPLETION_INDEX": str(index)}.items():
            monkeypatch.setenv(name, value)
        shell(run, dict(os.environ), capsys)
    (merge,) = commands(container_command(docs[-1]))
    shell(merge.replace("/results", str(results)), {}, capsys)
    merged_ok(results / "merged", job["spec"]["completions"])


def test_the_slurm_recipe_runs_as_written(project: Path, monkeypatch, capsys) -> None:
    script = recipe("## Slurm")
    run, merge = commands(script)
    low, high = map(int, re.search(r"--array=(\d+)-(\d+)", script).groups())  # type: ignore[union-attr]
    for task in range(low, high + 1):
        environ = {
            "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(low),
            "SLURM_ARRAY_TASK_MAX": str(high), "SLURM_ARRAY_TASK_COUNT": str(high - low + 1),
        }  # fmt: skip
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        shell(run, environ, capsys)
    shell(merge, {}, capsys)
    merged_ok(project / "results" / "merged", high - low + 1)


def test_the_github_actions_recipe_runs_as_written(project: Path, capsys) -> None:
    workflow = yaml.safe_load(recipe("## GitHub Actions"))
    shard_job, merge_job = workflow["jobs"]["shard"], workflow["jobs"]["merge"]
    (run,) = [c for s in shard_job["steps"] for c in commands(s.get("run", ""))]
    matrix = shard_job["strategy"]["matrix"]["shard"]
    for shard in matrix:  # the expressions GitHub substitutes before the shell sees the line
        line = run.replace("${{ matrix.shard }}", str(shard))
        shell(line.replace("${{ strategy.job-total }}", str(len(matrix))), {}, capsys)
        # upload-artifact, then download-artifact (pattern: shard-*) into shards/shard-N
        shutil.copytree(project / f"results-{shard}", project / "shards" / f"shard-{shard}")
    (merge,) = [c for s in merge_job["steps"] for c in commands(s.get("run", ""))]
    shell(merge, {}, capsys)
    merged_ok(project / "results", len(matrix))


# ------------------------------------------------------------------------------ real processes


def questions(write_yaml, server: FaultServer, cells: int, **extra: str) -> Path:
    return write_yaml(
        f"""\
        name: questions
        provider: openai
        providers:
          openai: {{base_url: "{server.base_url}"}}
        prompts:
          p: "question {{{{ i }}}}"
        vars:
          i: [{", ".join(str(i) for i in range(cells))}]
        params: {{model: m, max_tokens: 5}}
        pricing: {{m: {{input: 1, output: 2}}}}
        limits: {{max_concurrency: 4, timeout_s: 60, rpm: 60000, tpm: 100000000}}
        retry: {{max_attempts: 2, max_wait_s: 0.05}}
        {extra.get("more", "")}
        """
    )


@pytest.mark.slow
def test_a_shard_killed_mid_run_is_resumed_then_merged(write_yaml, tmp_path: Path, capsys) -> None:
    cells = 80  # shard 1's ~40 take ~2 s at 4 in flight: it is killed well before the end
    with FaultServer(latency_s=0.2) as server:
        path = questions(write_yaml, server, cells)
        first, second = tmp_path / "shard-0", tmp_path / "shard-1"
        promptgrid.run(path, results_dir=first, shard="0/2", progress=False)
        proc = start("run", str(path), "--shard", "1/2", "--results-dir", str(second), cwd=tmp_path)
        try:
            wait_for(lambda: rows(second) >= 5)
            code, _, err = cli("merge", first, second, "-o", tmp_path / "m", capsys=capsys)
            assert code == 5 and "still running" in err  # refused, not half-read
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
        finally:
            proc.kill()
        assert integrity(second) == "ok"
        code, _, err = cli("merge", first, second, "-o", tmp_path / "m", capsys=capsys)
        assert code == 7 and "incomplete: shard 1/2" in err and "interrupted" in err
        resumed = start("run", str(path), "--resume", "--results-dir", str(second), cwd=tmp_path)
        _, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
        code, _, err = cli("merge", first, second, "-o", tmp_path / "m", capsys=capsys)
        assert code == 0, err
    df = promptgrid.load(results_dir=tmp_path / "m")
    assert df["response"].tolist() == [f"echo: question {i}" for i in range(cells)]
    assert (df["status"] == "ok").all() and df["idx" if "idx" in df else "cell_id"].is_unique


@pytest.mark.slow
def test_a_merged_runs_error_rows_are_retried_from_the_output(
    write_yaml, tmp_path: Path, capsys
) -> None:
    judge = """scores:
          fine: {judge: {rubric: "Grade {{ answer }}", model: m, params: {max_tokens: 5}}}"""
    with FaultServer() as server:
        path = questions(write_yaml, server, 12, more=judge)
        for i in (2, 7):
            server.script_for(f"question {i}", ["400"])  # never retried: an error row
        folders = [tmp_path / f"shard-{i}" for i in range(3)]
        for i, folder in enumerate(folders):
            promptgrid.run(path, results_dir=folder, shard=(i, 3), progress=False)
        merged = promptgrid.merge(folders, output=tmp_path / "m")
        assert merged.exit_code == 3 and merged.counts["error"] == 2
        spends = []
        for folder in folders:
            with Store.in_dir(folder, readonly=True) as store:
                spends.append(store.spend(store.runs()[0].run_id))
        assert merged.spent == pytest.approx(sum(spends)) and merged.spent > 0  # costs summed
        before = server.stats()["requests"]
        code, _, err = cli("retry", merged.run_id, "--results-dir", tmp_path / "m",
                           "--no-progress", capsys=capsys)  # fmt: skip
        assert code == 0, err
        assert server.stats()["requests"] - before == 4  # two cells, and their judges
    df = promptgrid.load(merged.run_id, results_dir=tmp_path / "m")
    assert (df["status"] == "ok").all() and df["score_fine"].notna().all()
