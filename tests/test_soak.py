"""Soak: 500 cells through the real openai SDK against a fault server that fails 29 % of calls.

Seeded faults (10 % injected 429s, 15 % 5xx, 2 % dropped connections, 2 % malformed bodies) hit
whichever request arrives at that moment, so which cell suffers which fault varies from run to
run; with ``max_attempts: 20`` a cell ends in error with probability 0.29**20 ≈ 2e-11, so "every
cell ends ok" is deterministic in practice. Waits are kept short (``retry-after`` 50 ms, backoff
capped at 50 ms) so the whole soak takes a few seconds.

Why ``answered`` may exceed one per message, and by how much: the server counts a message as
answered when it builds a complete 200. Every injected fault replaces the answer (a dropped
connection is aborted *before* answering), so a second answer to the same message can only come
from a 200 the client never received: the connection failed or timed out after the server had
answered. Such an attempt is recorded as ``connection_error`` or ``timeout``, so the number of
duplicates is at most the number of those attempts (and is 0 on a quiet loopback).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

import promptgrid
from promptgrid.store import Store
from promptgrid.testing import FaultServer

CELLS = 500
FAULT_RATES = {"429": 0.10, "5xx": 0.15, "drop": 0.02, "malformed": 0.02}

pytestmark = pytest.mark.slow  # thousands of calls through faults


def soak_experiment(folder: Path) -> Path:
    """20 x 25 cells; each rendered message is unique ("Item a<i> of b<j>")."""
    a = ", ".join(f"a{i}" for i in range(20))
    b = ", ".join(f"b{j}" for j in range(25))
    path = folder / "soak.yaml"
    path.write_text(
        "name: soak\n"
        "provider: openai\n"
        "prompts:\n"
        "  p:\n"
        "    - {role: system, content: Repeat after me.}\n"
        '    - {role: user, content: "Item {{ a }} of {{ b }}"}\n'
        f"vars: {{a: [{a}], b: [{b}]}}\n"
        "params: {model: gpt-4o-mini, max_tokens: 16}\n"
        "limits: {max_concurrency: 50, timeout_s: 10}\n"
        "retry: {max_attempts: 20, max_wait_s: 0.05}\n",
        encoding="utf-8",
    )
    return path


def test_soak_every_cell_ends_ok_with_its_own_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    results = tmp_path / "results"
    with FaultServer(fault_rates=FAULT_RATES, seed=1234, retry_after_s=0.05) as server:
        df = promptgrid.run(
            soak_experiment(tmp_path), base_url=server.base_url, results_dir=results,
            progress=False,
        )  # fmt: skip
        stats = server.stats()

    # Every cell ends ok, with the answer to its own request.
    assert len(df) == CELLS and (df["status"] == "ok").all()
    expected = [
        "echo: " + [m["content"] for m in json.loads(messages) if m["role"] == "user"][-1]
        for messages in df["messages"]
    ]
    assert list(df["response"]) == expected
    assert list(df["response"]) == [
        f"echo: Item {a} of {b}" for a, b in zip(df["a"], df["b"], strict=True)
    ]
    assert df["cell_id"].is_unique and len(set(df["response"])) == CELLS

    # The faults really happened, and each was retried: one attempt per server request.
    injected = stats["injected"]
    # (about 1.4 requests a cell: ~70 injected 429s and ~105 5xx expected; bounds ~4 sigma below)
    assert (
        injected["429"] > CELLS // 14
        and sum(injected[s] for s in ("500", "502", "503")) > CELLS // 8
    )
    assert injected["drop"] > 0 and injected["malformed"] > 0
    assert df["attempts"].sum() == stats["requests"]
    assert (df["attempts"] > 1).sum() > CELLS // 5  # ~145 expected

    # Each message answered once; duplicates bounded by attempts whose answer may have been lost.
    run_id = df["run_id"][0]
    with Store.in_dir(results) as store:
        history = store.attempt_history(run_id)
        (info,) = store.runs()
    kinds = Counter(a["error_type"] for a in history)
    answered = stats["answered"]
    assert set(answered) == {f"Item {a} of {b}" for a, b in zip(df["a"], df["b"], strict=True)}
    duplicates = sum(answered.values()) - CELLS
    assert 0 <= duplicates <= kinds["connection_error"] + kinds["timeout"]
    assert kinds[None] == CELLS  # exactly one successful attempt per cell
    assert info.status == "finished"

    # The store is intact.
    db = sqlite3.connect(results / "promptgrid.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute(
            "SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)
        ).fetchone() == (CELLS,)
    finally:
        db.close()
