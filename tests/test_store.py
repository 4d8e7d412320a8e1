"""The SQLite store under what operators meet: concurrent opens, leases, dead owners, claims,
damaged and read-only files, and every failure as one StoreError."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from promptgrid.errors import (
    RunOwned,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreReadOnly,
    UsageError,
)
from promptgrid.store import MIGRATIONS, Owner, Store, leases, translate
from promptgrid.table import load_run


def new_run(store: Store, run_id: str = "r1") -> None:
    store.create_run(run_id, "exp", None, {}, [], 3, {})


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ------------------------------------------------------------------ opening


@pytest.mark.slow
def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    # Several processes open the same brand-new store at the same moment.
    code = textwrap.dedent(
        f"""
        import sys, time
        from promptgrid.store import Store
        while time.time() < float(sys.argv[1]):
            pass
        Store({str(tmp_path / "s.sqlite")!r}).close()
        """
    )
    import time

    start_at = str(time.time() + 1.5)  # all children start opening together
    children = [
        subprocess.Popen([sys.executable, "-c", code, start_at], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    errors = [c.communicate(timeout=60)[1] for c in children]
    assert [c.returncode for c in children] == [0] * 6, errors
    with Store(tmp_path / "s.sqlite") as store:
        applied = store.db.execute("SELECT name FROM migrations ORDER BY name").fetchall()
    assert applied == [(name,) for name, _ in MIGRATIONS]


def test_missing_store_is_not_created_by_readers(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no runs in"):
        Store.in_dir(tmp_path / "none", readonly=True)
    assert not (tmp_path / "none").exists()


def test_results_dir_under_a_file_is_one_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="a file is in the way"):
        Store.in_dir(tmp_path / "file" / "results")


def test_a_damaged_store_is_named_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "promptgrid.sqlite"
    with Store(path) as store:
        new_run(store)
    with path.open("r+b") as f:  # overwrite the pages after the header with garbage
        f.seek(100)
        f.write(os.urandom(8192))
    with pytest.raises(StoreCorrupt) as caught, Store(path, readonly=True) as store:
        store.runs()
    assert str(path) in str(caught.value) and "move it aside" in str(caught.value)


def test_not_a_database_at_all(tmp_path: Path) -> None:
    path = tmp_path / "promptgrid.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorrupt):
        Store(path)


def test_store_from_a_newer_promptgrid_is_refused_and_closed(tmp_path: Path) -> None:
    path = tmp_path / "promptgrid.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO migrations VALUES ('999_future', 'x')")
    db.close()
    with pytest.raises(StoreCorrupt, match="newer promptgrid"):
        Store(path)  # filterwarnings=error: an unclosed connection would fail here


def test_readonly_open_reads_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "promptgrid.sqlite"
    with Store(path) as store:
        new_run(store)
    before = path.read_bytes()
    with Store(path, readonly=True) as store:
        assert [r.run_id for r in store.runs()] == ["r1"]
        with pytest.raises(StoreReadOnly):
            new_run(store, "r2")
    assert path.read_bytes() == before


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(sqlite3.OperationalError("database or disk is full"), StoreFull, id="full"),
        pytest.param(OSError(28, "No space left on device"), StoreFull, id="enospc"),
        pytest.param(sqlite3.OperationalError("database is locked"), StoreLocked, id="locked"),
        pytest.param(
            sqlite3.DatabaseError("database disk image is malformed"), StoreCorrupt, id="malformed"
        ),
        pytest.param(sqlite3.DatabaseError("file is not a database"), StoreCorrupt, id="notadb"),
        pytest.param(
            sqlite3.OperationalError("attempt to write a readonly database"),
            StoreReadOnly,
            id="readonly",
        ),
        pytest.param(PermissionError(13, "Permission denied"), StoreReadOnly, id="permission"),
        pytest.param(sqlite3.OperationalError("something else"), StoreError, id="other"),
    ],
)
def test_every_failure_becomes_one_store_error(error: BaseException, expected: type) -> None:
    translated = translate(error, Path("r/promptgrid.sqlite"), "writing results")
    assert type(translated) is expected
    assert "r/promptgrid.sqlite" in str(translated) and "writing results" in str(translated)


# ------------------------------------------------------------------ leases


def test_a_live_owner_keeps_the_run(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        new_run(store)
        me = Owner.me()
        leases.acquire(store, "r1", me)
        leases.acquire(store, "r1", me)  # the owner itself may take it again
        other = Owner(os.getpid(), me.host, "other-token")  # alive: this very process
        with pytest.raises(RunOwned) as caught:
            leases.acquire(store, "r1", other)
        assert f"process {os.getpid()}" in str(caught.value) and "kill" in str(caught.value)
        assert store.run("r1").status == "running"  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_dead_owner_shows_interrupted_and_can_be_replaced(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        new_run(store)
        ghost = Owner(dead_pid(), Owner.me().host, "ghost")
        leases.acquire(store, "r1", ghost)  # then killed with -9: nobody released the run
        info = store.run("r1")
        assert info is not None and info.status == "interrupted" and info.owner is None
        leases.acquire(store, "r1", Owner.me())
        assert store.run("r1").status == "running"  # type: ignore[union-attr]


def test_a_silent_owner_on_another_host_expires(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        new_run(store)
        remote = Owner(1, "elsewhere.example", "remote")
        leases.acquire(store, "r1", remote)
        assert store.run("r1").status == "running"  # type: ignore[union-attr]
        store.db.execute("UPDATE owners SET heartbeat = heartbeat - 3600")
        assert store.run("r1").status == "interrupted"  # type: ignore[union-attr]


def test_release_records_the_end_and_drops_claims(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        new_run(store)
        me = Owner.me()
        leases.acquire(store, "r1", me)
        assert store.claim(["a", "b"], me, after=0) == [True, True]
        leases.release(store, "r1", me, "interrupted")
        assert store.db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
        info = store.run("r1")
        assert info is not None and info.status == "interrupted" and info.finished_at


# ------------------------------------------------------------------ claims


def test_claims_answer_owner_or_stored_answer(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        me, other = Owner.me(), Owner(os.getpid(), Owner.me().host, "other")
        assert store.claim(["x"], other, after=0) == [True]
        assert store.claim(["x"], me, after=0) == [f"{os.getpid()}@{me.host}"]  # being sent
        store.db.execute(
            "INSERT INTO responses (cell_id, response, created_at) VALUES ('x', 'hi', 'now')"
        )
        [answer] = store.claim(["x"], me, after=0)
        assert isinstance(answer, int) and answer is not True  # answered: use it
        # Without the cache, an answer from before the run does not count.
        assert store.claim(["x"], me, after=answer) == [f"{os.getpid()}@{me.host}"]


@pytest.mark.slow
def test_a_dead_owners_claims_are_taken_over(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        ghost = Owner(dead_pid(), Owner.me().host, "ghost")
        assert store.claim(["x"], ghost, after=0) == [True]
        assert store.claim(["x"], Owner.me(), after=0) == [True]


#: A migration whose ``;`` are not all statement ends: in a string literal, a quoted name, a
#: comment and a trigger's body.
TRICKY = """
    CREATE TABLE notes (body TEXT NOT NULL DEFAULT 'a; b', "odd;name" INTEGER DEFAULT 0);
    -- a comment; with a semicolon
    CREATE TABLE note_log (body TEXT);
    CREATE TRIGGER note_logged AFTER INSERT ON notes BEGIN
        INSERT INTO note_log VALUES (new.body || '; logged');
        UPDATE notes SET "odd;name" = 1 WHERE rowid = new.rowid;
    END;
    INSERT INTO notes (body) VALUES ('first; of all')
"""


def test_a_migration_runs_statement_by_statement_whatever_its_strings_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import promptgrid.store.core

    monkeypatch.setattr(promptgrid.store.core, "MIGRATIONS", (*MIGRATIONS, ("999_notes", TRICKY)))
    with Store(tmp_path / "s.sqlite") as store:
        assert store.db.execute('SELECT body, "odd;name" FROM notes').fetchall() == [
            ("first; of all", 1)
        ]
        assert store.db.execute("SELECT body FROM note_log").fetchall() == [
            ("first; of all; logged",)
        ]


def test_a_failing_migration_leaves_nothing_of_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import promptgrid.store.core

    broken = (
        "999_broken",
        "CREATE TABLE half (x TEXT DEFAULT ';'); INSERT INTO nowhere VALUES (1)",
    )
    monkeypatch.setattr(promptgrid.store.core, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(StoreError, match="no such table: nowhere"):
        Store(tmp_path / "s.sqlite")
    db = sqlite3.connect(tmp_path / "s.sqlite")
    try:  # the whole upgrade is one transaction: not even the first migration stayed
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert "half" not in tables and "runs" not in tables


# ------------------------------------------------------------------ upgrades


def test_a_store_of_the_previous_schema_opens_upgraded_and_reads(tmp_path: Path) -> None:
    # A store as promptgrid wrote it before 003_request_kinds: migrations 001 and 002 only.
    path = tmp_path / "promptgrid.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in MIGRATIONS[:2]:
        db.executescript(sql)
        db.execute("INSERT INTO migrations VALUES (?, '2026-11-01T00:00:00+00:00')", (name,))
    request = {"endpoint": "echo", "model": "m", "messages": [{"role": "user", "content": "hi"}],
               "params": {}}  # fmt: skip
    db.executescript(
        f"""
        INSERT INTO runs (run_id, experiment, source, spec_json, columns_json, options_json,
            total, status, created_at, finished_at)
            VALUES ('old', 'exp', NULL, '{{}}', '[["model", "str"]]', '{{}}', 2, 'finished',
                    '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:01+00:00');
        INSERT INTO requests VALUES ('c0', '{json.dumps(request)}');
        INSERT INTO responses (id, cell_id, response, finish_reason, prompt_tokens,
            completion_tokens, cached_tokens, reasoning_tokens, resolved_model, request_id,
            latency_s, cost_usd, rate_limits_json, created_at)
            VALUES (1, 'c0', 'echo: hi', 'stop', 8, 2, NULL, NULL, 'm', NULL, 0.01, 0.0, '{{}}',
                    '2026-11-01T00:00:00+00:00');
        INSERT INTO results VALUES ('old', 0, 'c0', 'p', '{{}}', '{{"model": "m"}}', 0, 'ok', 1,
            NULL, NULL, NULL, 1, 0.01, 0.0, 0);
        INSERT INTO results VALUES ('old', 1, 'c0', 'p', '{{}}', '{{"model": "m"}}', 1, 'error',
            NULL, 'server_error', 503, 'HTTP 503', 6, 0.02, NULL, 0);
        """
    )
    db.commit()
    db.close()
    with pytest.raises(StoreCorrupt, match="needs an upgrade"):  # a reader cannot upgrade it
        Store(path, readonly=True)

    with Store(path) as store:
        applied = [n for (n,) in store.db.execute("SELECT name FROM migrations ORDER BY name")]
        assert applied == [name for name, _ in MIGRATIONS]
        run = store.run("old")
        assert run is not None
        df = load_run(store, run)
    assert df["response"][0] == "echo: hi" and df["response"].isna().tolist() == [False, True]
    assert list(df["choice"]) == [0, 0]
    assert list(df["status"]) == ["ok", "error"] and df["prompt_tokens"][0] == 8
    for column in ("tool_calls", "parsed", "parse_error", "refusal", "token_logprobs",
                   "reasoning_summary", "ttft_s", "tokens_per_s"):  # fmt: skip
        assert df[column].isna().all(), column
    with Store(path, readonly=True) as store:  # upgraded once: readers open it as it is
        assert store.run("old") is not None
