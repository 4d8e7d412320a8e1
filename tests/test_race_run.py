"""Racing in ``run``: the grid walked round by round through the engine, each decision stored
before the next round, resumable, and agreeing with a replay of the full grid.

The grids are small (three prompts, tens of cases) and mostly on the echo provider, whose
answer repeats the prompt: prompt ``strong`` "passes" a case when the cases file's ``hi``
column says yes (90 % of the cases), ``middle`` by ``mid`` (50 %), ``weak`` by ``lo`` (10 %).
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import warnings
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

import promptgrid
from promptgrid.cli import main
from promptgrid.errors import PromptgridWarning, SpecError, UsageError
from promptgrid.grid import expand
from promptgrid.providers.echo import EchoProvider
from promptgrid.race import Race, Rules, block_order, drive
from promptgrid.race.layout import Layout
from promptgrid.testing import FaultServer

VARIANTS = ("strong", "middle", "weak")
EXPERIMENT = """\
name: raced
provider: PROVIDER
prompts:
  strong: "strong {{ id }}: {{ hi }}"
  middle: "middle {{ id }}: {{ mid }}"
  weak: "weak {{ id }}: {{ lo }}"
cases_file: cases.csv
params: {model: m, max_tokens: 5}
repeats: REPEATS
scores:
  correct: {contains: "yes"}
race: {score: correct, min_cases: 10}
"""


def write(tmp_path: Path, *, cases: int = 80, repeats: int = 1, provider: str = "echo",
          extra: str = "", race: str | None = None) -> Path:  # fmt: skip
    """The experiment and its cases file (the same data for the same ``cases``)."""
    rng = random.Random(7)
    rows = ["id,hi,mid,lo"] + [
        f"{i}," + ",".join("yes" if rng.random() < p else "no" for p in (0.9, 0.5, 0.1))
        for i in range(cases)
    ]
    (tmp_path / "cases.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    text = EXPERIMENT.replace("PROVIDER", provider).replace("REPEATS", str(repeats))
    if race is not None:
        text = text.replace("race: {score: correct, min_cases: 10}", race)
    path = tmp_path / "raced.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def run(path: Path, results: Path, **options: Any) -> pd.DataFrame:
    return promptgrid.run(path, results_dir=results, progress=False, **options)


def rounds_stored(results: Path) -> dict[int, tuple[list[str], int]]:
    """Each stored round: the variants that ran in it and the blocks run after it."""
    with closing(sqlite3.connect(f"file:{results / 'promptgrid.sqlite'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT round, variant, blocks FROM race_rounds ORDER BY round, rowid")
        out: dict[int, tuple[list[str], int]] = {}
        for number, variant, blocks in rows:
            out.setdefault(number, ([], blocks))[0].append(variant)
    return out


def pairs(df: pd.DataFrame) -> list[tuple[str, int]]:
    """(variant, block) of each row: the block is the case's id (one case axis)."""
    return [(str(p), int(i)) for p, i in zip(df["prompt"], df["id"], strict=True)]


def drops(race: promptgrid.Standings) -> list[tuple[Any, ...]]:
    return [(d.variant, d.round, d.blocks, d.against, round(d.estimate, 9), round(d.low, 6),
             round(d.high, 6)) for d in race.record.drops]  # fmt: skip


# ------------------------------------------------------------------ rounds


@pytest.mark.slow
def test_each_round_runs_exactly_the_survivors_on_its_blocks_after_the_last_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, results = write(tmp_path), tmp_path / "results"
    decided_before: dict[tuple[str, int], int] = {}  # (variant, block) -> rounds recorded then
    real = EchoProvider.complete

    async def watched(self: EchoProvider, request: Any) -> Any:
        variant, block = re.match(r"(\w+) (\d+):", request.messages[-1]["content"]).groups()
        decided_before[(variant, int(block))] = len(rounds_stored(results))
        return await real(self, request)

    monkeypatch.setattr(EchoProvider, "complete", watched)
    df = run(path, results)
    race = promptgrid.standings(results_dir=results)
    assert race is not None and race.record.finished and race.winner == "strong"
    stored = rounds_stored(results)
    order = block_order(80, 0)
    expected: dict[tuple[str, int], int] = {}
    ran = 0
    for number, (variants, blocks) in sorted(stored.items()):
        for block in order[ran:blocks]:
            expected.update({(v, block): number for v in variants})
        ran = blocks
    # Every survivor on every block of each round, nothing else, each sent once.
    assert sorted(pairs(df)) == sorted(expected) and len(df) == race.calls < 240
    assert set(decided_before) == set(expected)
    # Each call was sent once the decisions of every earlier round were in the store.
    assert all(decided_before[key] == expected[key] - 1 for key in expected)
    assert race.saved == 240 - len(df) and list(race.table["calls"]) == [
        int((df["prompt"] == v).sum()) for v in race.table["prompt"]
    ]


@pytest.mark.parametrize("repeats", [1, 2], ids=["once", "repeats"])
@pytest.mark.slow
def test_a_full_grid_replay_reaches_the_decisions_the_live_race_made(
    tmp_path: Path, repeats: int
) -> None:
    path = write(tmp_path, repeats=repeats)
    df = run(path, tmp_path / "raced")
    live = promptgrid.standings(results_dir=tmp_path / "raced")
    full = run(path, tmp_path / "full", race=False)
    assert len(full) == 240 * repeats
    assert promptgrid.standings(results_dir=tmp_path / "full") is None
    replayed = promptgrid.replay(full, results_dir=tmp_path / "full")  # the file's race:
    assert live is not None and live.winner == replayed.winner == "strong"
    assert drops(live) == [
        (e.variant, e.round, e.blocks, e.against, round(e.estimate, 9), round(e.low, 6),
         round(e.high, 6)) for e in replayed.outcome.eliminations
    ]  # fmt: skip
    assert live.calls == replayed.calls == len(df)
    # Repeats stay in their block: every (variant, block) run has all its repeats.
    assert (df.groupby(["prompt", "id"]).size() == repeats).all()
    assert (live.table["calls"] == repeats * live.table["cases"]).all()


@pytest.mark.slow  # a fault server
def test_error_rows_are_skipped_and_the_race_follows_its_scores(tmp_path: Path) -> None:
    first = block_order(80, 0)[:10]  # the first round's cases
    with FaultServer() as server:
        for case in first[1:4]:  # strong fails on three of them, weak on one
            server.script_for(f"strong {case}:", ["500"])
        server.script_for(f"weak {first[0]}:", ["500"])
        extra = f"providers:\n  openai: {{base_url: '{server.base_url}'}}\n"
        extra += "retry: {max_attempts: 1}\nlimits: {rpm: 60000, tpm: 100000000}\n"
        path = write(tmp_path, provider="openai", extra=extra)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OPENAI_API_KEY", "sk-test")
            df = run(path, tmp_path / "results")
            race = promptgrid.standings(results_dir=tmp_path / "results")
            sent = server.stats()["requests"]
            # A retry re-runs the four error rows (answered now) and decides the race again.
            retried = promptgrid.retry(df["run_id"][0], results_dir=tmp_path / "results",
                                       progress=False)  # fmt: skip
            assert server.stats()["requests"] == sent + 4
    assert race is not None and race.record.finished and race.winner == "strong"
    after = promptgrid.standings(results_dir=tmp_path / "results")
    assert after is not None and after.record.finished and after.winner == "strong"
    assert (retried["status"] == "ok").all() and len(retried) == len(df) == after.calls
    assert (df["status"] == "error").sum() == 4
    # The stored decisions are the core's over the table's values, error rows as no score;
    # after the retry, over the retried table's (the rows run stay, even where the new
    # decisions would not have needed them).
    assert [d[:3] for d in drops(race)] == core_drops(df)
    assert [d[:3] for d in drops(after)] == core_drops(retried) != core_drops(df)
    strong = race.table.set_index("prompt").loc["strong"]
    assert strong["calls"] == strong["cases"] + 3  # three blocks ran with no score


def core_drops(df: pd.DataFrame) -> list[tuple[str, int, int]]:
    """(variant, round, blocks) of each elimination of the core raced over ``df``'s scores."""
    values = {v: {int(i): (None if pd.isna(s) else float(s)) for i, s in zip(g["id"],
              g["score_correct"], strict=True)} for v, g in df.groupby("prompt")}  # fmt: skip
    core = drive(Race.start(VARIANTS, 80, Rules(0.95, 10, 1, 0)),
                 lambda r: {v: [values[v][b] for b in r.blocks] for v in r.variants})  # fmt: skip
    return [(e.variant, e.round, e.blocks) for e in core.eliminations]


@pytest.mark.slow  # a fault server
def test_a_judge_can_decide_the_race(tmp_path: Path) -> None:
    scores = """\
scores:
  good:
    judge: {rubric: "Grade the answer: {{ answer }}", model: judge-m,
            params: {max_tokens: 20}}
"""
    with FaultServer() as server:
        server.answer_for(": yes", "said-yes")  # the model's answers...
        server.answer_for(": no", "said-no")
        server.answer_for("answer: said-yes", '{"verdict": "pass"}')  # ...and their verdicts
        server.answer_for("answer: said-no", '{"verdict": "fail"}')
        extra = f"providers:\n  openai: {{base_url: '{server.base_url}'}}\n"
        extra += "limits: {rpm: 60000, tpm: 100000000}\n"
        path = write(tmp_path, provider="openai", extra=extra,
                     race="race: {score: good, min_cases: 10}")  # fmt: skip
        text = path.read_text().replace('scores:\n  correct: {contains: "yes"}\n', scores)
        path.write_text(text)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OPENAI_API_KEY", "sk-test")
            df = run(path, tmp_path / "results")
        requests = server.stats()["requests"]
    race = promptgrid.standings(results_dir=tmp_path / "results")
    assert race is not None and race.record.finished and race.winner == "strong"
    assert race.calls == len(df) < 240 and requests == len(df) + 2  # two answers: each judged once
    assert df["score_good"].notna().all()


# ------------------------------------------------------------------ stops and resumes


@pytest.mark.slow  # a fault server
def test_the_budget_stops_a_race_mid_way_and_a_resume_finishes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    with FaultServer() as server:
        extra = f"providers:\n  openai: {{base_url: '{server.base_url}'}}\n"
        extra += "pricing: {m: {input: 100, output: 100}}\nlimits: {max_concurrency: 2}\n"
        path = write(tmp_path, provider="openai", extra=extra)
        where = ["--results-dir", str(results), "--no-progress"]
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OPENAI_API_KEY", "sk-test")
            with pytest.raises(SystemExit) as stop:
                main(["run", str(path), *where, "--max-cost", "0.04"])
            assert stop.value.code == 4
            err = capsys.readouterr().err
            assert "resume with:" in err and "--max-cost" in err
            stopped = promptgrid.standings(results_dir=results)
            assert stopped is not None and stopped.record.state.stopped == "budget"
            assert 0 < stopped.calls < 240 and stopped.winner is not None
            assert {p.status for p in stopped.record.state.standings} <= {"tied", "dropped"}
            sent = server.stats()["requests"]
            # The race keeps its settings: another seed on resume is refused.
            with pytest.raises(SystemExit) as refused:
                main(["run", str(path), *where, "--resume", "--race-seed", "3"])
            assert refused.value.code == 2 and "keeps its settings" in capsys.readouterr().err
            with pytest.raises(SystemExit) as done:
                main(["run", str(path), *where, "--resume", "--max-cost", "5"])
            assert done.value.code == 0, capsys.readouterr().err
            resumed_sends = server.stats()["requests"] - sent
            server.reset_stats()
            uninterrupted = run(path, tmp_path / "again")
            assert server.stats()["requests"] == len(uninterrupted)
    finished = promptgrid.standings(results_dir=results)
    again = promptgrid.standings(results_dir=tmp_path / "again")
    assert finished is not None and again is not None and finished.record.finished
    assert drops(finished) == drops(again) and finished.calls == again.calls
    assert sent + resumed_sends == finished.calls  # nothing sent twice
    assert "race: winner: strong" in capsys.readouterr().out


@pytest.mark.slow
def test_a_resume_replays_the_stored_rounds_without_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A race interrupted after some rounds (the rows of two more rounds dropped from the
    store, as if never sent) continues from its first incomplete round, sending only those
    rows; its stored rounds are written again and agree."""
    path, results = write(tmp_path), tmp_path / "results"
    df = run(path, results)
    before = promptgrid.standings(results_dir=results)
    stored = rounds_stored(results)
    assert before is not None and len(stored) >= 4
    cut = stored[2][1]  # the blocks run after round 2
    order = block_order(80, 0)
    later = {b for b in order[cut:]}
    with closing(sqlite3.connect(results / "promptgrid.sqlite")) as db:
        run_id = df["run_id"][0]
        rows = db.execute("SELECT idx, cell_id, vars_json FROM results WHERE run_id = ?",
                          (run_id,))  # fmt: skip
        gone = [(i, c) for i, c, v in rows if int(json.loads(v)["id"]) in later]
        for table in ("results", "scores"):
            db.executemany(f"DELETE FROM {table} WHERE run_id = ? AND idx = ?",
                           [(run_id, i) for i, _ in gone])  # fmt: skip
        db.executemany("DELETE FROM responses WHERE cell_id = ?", [(c,) for _, c in gone])
        db.execute("DELETE FROM race_rounds WHERE round > 2")
        db.execute("UPDATE runs SET status = 'interrupted'")
        db.commit()
    sent: list[str] = []
    real = EchoProvider.complete

    async def counted(self: EchoProvider, request: Any) -> Any:
        sent.append(request.messages[-1]["content"])
        return await real(self, request)

    monkeypatch.setattr(EchoProvider, "complete", counted)
    again = run(path, results, resume=True)
    after = promptgrid.standings(results_dir=results)
    assert after is not None and drops(after) == drops(before) and len(again) == len(df)
    assert len(sent) == len(gone)  # exactly the rows that were missing
    assert rounds_stored(results) == stored


# ------------------------------------------------------------------ options and views


@pytest.mark.slow
def test_cli_race_options_are_recorded_and_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, results = write(tmp_path), tmp_path / "results"
    where = ["--results-dir", str(results), "--no-progress"]
    with pytest.raises(SystemExit) as ok:
        main(["run", str(path), *where, "--race-confidence", "0.9", "--race-min-cases", "12",
              "--format", "xlsx,html"])  # fmt: skip
    assert ok.value.code == 0
    out = capsys.readouterr().out
    assert "race: winner: strong" in out and "saved)" in out
    race = promptgrid.standings(results_dir=results)
    assert race is not None
    assert race.record.settings == {"score": "correct", "factor": "prompt", "confidence": 0.9,
                                    "min_cases": 12, "keep": 1, "seed": 0}  # fmt: skip
    with closing(sqlite3.connect(results / "promptgrid.sqlite")) as db:
        options = json.loads(db.execute("SELECT options_json FROM runs").fetchone()[0])
    assert options["race"] == {"confidence": 0.9, "min_cases": 12}
    # show: the rows, then the race as recorded.
    main_exit(["show", "--results-dir", str(results)])
    shown = capsys.readouterr().out
    assert "race on correct by prompt: confidence 0.9, min_cases 12" in shown
    assert re.search(r"weak\s+dropped.*round \d+, after \d+ blocks, by strong", shown)
    # The XLSX summary opens with the race; the report has its tab's data.
    folder = results / "raced" / race.record.run_id
    sheet = openpyxl.load_workbook(folder / "results.xlsx")["summary"]
    facts = {r[0]: r[1] for r in sheet.iter_rows(min_row=2, max_row=6, values_only=True)}
    assert facts["winner"] == "strong" and facts["calls saved"] == race.saved
    page = (folder / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="promptgrid-data">(.*?)</script>', page, re.S).group(1))
    assert data["race"]["variants"][0]["name"] == "strong"
    assert data["race"]["variants"][2]["dropped"]["against"] == "strong"
    assert 'data-view="race"' in page and "function drawRace" in page
    # Bad combinations: one message, exit 2, nothing written.
    for args, message in (
        (["--no-race", "--race-seed", "1"], "--no-race runs the full grid"),
        (["--race-factor", "colour"], "race.factor: unknown factor 'colour'"),
        (["--race-keep", "3"], "nothing would be dropped"),
        (["--race-bounds", "0"], "is not LOW,HIGH"),
    ):
        with pytest.raises(SystemExit) as bad:
            main(["run", str(path), "--results-dir", str(tmp_path / "none"), *args])
        err = capsys.readouterr().err
        assert bad.value.code == 2 and message in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "none").exists()


def main_exit(args: list[str]) -> None:
    """``main(args)``, which may end with exit 0."""
    try:
        main(args)
    except SystemExit as done:
        assert done.code in (0, None)


def test_race_and_batch_mode_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = "providers:\n  openai: {base_url: 'http://127.0.0.1:9/v1'}\n"
    path = write(tmp_path, provider="openai", extra=extra)
    for command in ("run", "plan"):
        with pytest.raises(SystemExit) as refused:
            main([command, str(path), "--results-dir", str(tmp_path / "r"), "--batch"])
        err = capsys.readouterr().err
        assert refused.value.code == 2 and "race: and batch mode do not mix" in err
        assert "--no-race" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_plan_shows_the_race_between_its_first_round_and_the_full_grid(tmp_path: Path) -> None:
    path = write(tmp_path, repeats=2)
    plan = promptgrid.plan(path, results_dir=tmp_path, race={"min_cases": 15})
    assert plan.race is not None and plan.total == 480
    assert (plan.race.calls_min, plan.race.calls_max) == (3 * 15 * 2, 480)
    text = str(plan)
    assert "race calls (at least)" in text and "race calls (at most)" in text
    assert plan.to_dict()["race"]["first_round"] == 15
    assert promptgrid.plan(path, results_dir=tmp_path, race=False).race is None
    assert plan.race.calls_expected is None and "expected: unknown" in text


@pytest.mark.slow  # the full grid's scores run in the scoring worker
def test_plan_expects_what_a_stored_full_grid_replayed_as_the_race_used(tmp_path: Path) -> None:
    path = write(tmp_path, repeats=2)
    results = tmp_path / "r"
    full = promptgrid.run(path, results_dir=results, race=False, progress=False)
    replayed = promptgrid.replay(str(full["run_id"].iloc[0]), results_dir=results,
                                 race={"min_cases": 15})  # fmt: skip
    plan = promptgrid.plan(path, results_dir=results, race={"min_cases": 15})
    assert plan.race is not None and plan.race.pilot == full["run_id"].iloc[0]
    assert plan.race.calls_expected == replayed.calls  # the same grid: the share is exact
    assert plan.race.calls_min <= replayed.calls <= plan.race.calls_max
    assert "race calls (expected)" in str(plan)


@pytest.mark.slow
def test_api_race_option_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path)
    with pytest.raises(UsageError, match="unknown setting colour"):
        run(path, tmp_path, race={"colour": 1})
    with pytest.raises(UsageError, match="race= takes a mapping"):
        run(path, tmp_path, race="fast")
    with pytest.raises(SpecError, match=r"race\.confidence"):
        run(path, tmp_path, race={"confidence": 2})
    no_race = write(tmp_path, race="")
    with pytest.raises(UsageError, match="which score decides the race"):
        run(no_race, tmp_path, race={"seed": 2})
    df = run(no_race, tmp_path, race={"score": "correct", "min_cases": 10})  # a race in code
    assert len(df) < 240 and promptgrid.standings(results_dir=tmp_path) is not None


@pytest.mark.slow
def test_scores_outside_the_bounds_are_left_out_with_one_warning(tmp_path: Path) -> None:
    (tmp_path / "rated.py").write_text(
        "def rate(answer, row):\n"
        "    if row['vars']['id'] == '3':\n"
        "        return 7.0\n"
        "    return 1.0 if answer.endswith('yes') else 0.0\n",
        encoding="utf-8",
    )
    extra = "  rating: {python: 'rated:rate'}\n"
    path = write(tmp_path, race="race: {score: rating, min_cases: 10}")
    text = path.read_text().replace('  correct: {contains: "yes"}\n',
                                    '  correct: {contains: "yes"}\n' + extra)  # fmt: skip
    path.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(path, tmp_path / "results")
    found = [w for w in caught if issubclass(w.category, PromptgridWarning)
             and "outside the race's bounds" in str(w.message)]  # fmt: skip
    assert len(found) == 1 and "7.0" in str(found[0].message)
    race = promptgrid.standings(results_dir=tmp_path / "results")
    assert race is not None and race.winner == "strong"


# ------------------------------------------------------------------ the layout


@pytest.mark.parametrize("factor", ["prompt", "tone", "temperature"])
def test_layout_finds_each_cell_of_a_variant_and_block(
    write_yaml: Callable[..., Path], factor: str
) -> None:
    from promptgrid.config import RunOptions, resolve

    path = write_yaml("""\
        name: layout
        provider: echo
        prompts: {a: "{{ q }} {{ tone }}", b: "{{ q }}! {{ tone }}"}
        cases: [{q: one}, {q: two}, {q: three}]
        vars: {tone: [calm, loud]}
        params: {model: m, temperature: [0.0, 0.5, 1.0], max_tokens: 5}
        repeats: 2
        """)  # fmt: skip
    experiment = promptgrid.Experiment.from_yaml(path)
    layout = Layout.of(experiment, factor)
    cells = list(expand(resolve(experiment, RunOptions())))
    level = {"prompt": lambda c: c.prompt, "tone": lambda c: c.vars["tone"],
             "temperature": lambda c: str(c.params["temperature"])}[factor]  # fmt: skip
    indexes = pd.Series([c.index for c in cells]).to_numpy()
    assert [layout.variants[v] for v in layout.variant_of(indexes)] == [level(c) for c in cells]
    blocks = layout.block_of(indexes)
    assert layout.n_blocks == len(cells) // (len(layout.variants) * 2)
    # A block is the same inputs but the factor; its cells are found back from it.
    for cell, block in zip(cells, blocks, strict=True):
        v = layout.variants.index(level(cell))
        assert cell.index in layout.cells([v], [int(block)]).ravel()
    # Numbered in order of first appearance, as a replay numbers a full grid's blocks.
    assert list(dict.fromkeys(int(b) for b in blocks)) == list(range(layout.n_blocks))


@pytest.mark.slow
def test_kill_9_mid_race_then_resume_sends_nothing_twice_and_decides_the_same(
    tmp_path: Path,
) -> None:
    """``promptgrid run`` killed (SIGKILL) while round 3's calls are in flight: the resume
    replays rounds 1-2 from the store, sends only what was never answered, and reaches the
    decisions of an uninterrupted race."""
    from processes import KEY, integrity, start, wait_for

    with FaultServer(stall_s=60) as server:
        extra = f"providers:\n  openai: {{base_url: '{server.base_url}'}}\n"
        extra += "limits: {rpm: 60000, tpm: 100000000, max_concurrency: 4}\n"
        path = write(tmp_path, provider="openai", extra=extra)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OPENAI_API_KEY", KEY)
            run(path, tmp_path / "again")  # the uninterrupted race, for reference
        again = promptgrid.standings(results_dir=tmp_path / "again")
        assert again is not None and again.record.finished
        reference = rounds_stored(tmp_path / "again")
        held = block_order(80, 0)[reference[2][1]]  # in round 3
        assert calls_through(reference, len(reference)) == again.calls  # the count below holds
        through_3 = calls_through(reference, 3)
        server.reset_stats()
        server.script_for(f"strong {held}:", ["stall"])  # its first call hangs
        results = tmp_path / "results"

        def stopped_in_round_3() -> bool:
            # Every call of rounds 1-3 sent, the held one alone in flight, every answer
            # committed: nothing more can be answered before the kill lands (an answer that
            # arrived after the check and died uncommitted with the process would be paid
            # again on resume: a kill's loss, not a resume's).
            stats = server.stats()
            answered = stats["requests"] - stats["in_flight"]
            try:
                return (stats["requests"] == through_3 and stats["in_flight"] == 1
                        and len(rounds_stored(results)) == 2
                        and committed(results) == answered)  # fmt: skip
            except sqlite3.OperationalError:  # the store is not there yet
                return False

        proc = start("run", str(path), "--results-dir", str(results), cwd=tmp_path)
        try:
            wait_for(stopped_in_round_3)
            proc.kill()  # SIGKILL
            proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        assert integrity(results) == "ok"
        resumed = start("run", str(path), "--results-dir", str(results), "--resume", cwd=tmp_path)
        try:
            out, err = resumed.communicate(timeout=60)
        finally:
            if resumed.poll() is None:
                resumed.kill()
                resumed.communicate(timeout=10)
        assert resumed.returncode == 0, err
        stats = server.stats()
    finished = promptgrid.standings(results_dir=results)
    assert finished is not None and finished.record.finished and "race: winner: strong" in out
    assert drops(finished) == drops(again) and finished.calls == again.calls
    assert rounds_stored(results) == rounds_stored(tmp_path / "again")
    # Each answer paid once; only the call held at the kill was sent again.
    assert set(stats["answered"].values()) == {1} and sum(stats["answered"].values()) == again.calls
    assert stats["requests"] == again.calls + 1


def calls_through(rounds: dict[int, tuple[list[str], int]], last: int) -> int:
    """Calls a race makes in its rounds 1 to ``last``: each round runs its variants on the
    blocks added since the round before (one call a cell: no repeats)."""
    before, calls = 0, 0
    for number in range(1, last + 1):
        variants, blocks = rounds[number]
        calls += len(variants) * (blocks - before)
        before = blocks
    return calls


def committed(results: Path) -> int:
    """Result rows in the store (read-only, from outside the running process)."""
    with closing(sqlite3.connect(f"file:{results / 'promptgrid.sqlite'}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
