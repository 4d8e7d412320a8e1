"""Shards: which cells a shard holds (a property of the request alone), where the shard comes from
(--shard I/N, or the job runner's environment), what a plan shows, and how a merge chooses."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import promptgrid
from promptgrid.config import RunOptions, resolve
from promptgrid.errors import RunOwned, UsageError
from promptgrid.grid import cell_ids, expand
from promptgrid.shards import (
    GridShare,
    Shard,
    ShardRun,
    parse_shard,
    plan_merge,
    shard_of,
    survey,
)
from promptgrid.spec import Experiment

PROPERTY = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
FOREIGN_GARBAGE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def experiment(data: dict) -> Experiment:
    return Experiment.from_dict({"provider": "echo", **data})


def walk(exp: Experiment, shard: Shard | None = None) -> list[tuple[int, str]]:
    """(index, cell_id) of the cells a run of ``shard`` walks."""
    return [(c.index, c.cell_id) for c in expand(resolve(exp, RunOptions(shard=shard)))]


@st.composite
def grids(draw: st.DrawFn) -> dict:
    """An experiment's mapping: 1-3 prompts (one may ignore a var: its cells then repeat a
    request), 1-2 vars axes of 1-4 values, a model axis, 1-3 repeats."""
    values = st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True)
    axes = draw(st.dictionaries(st.sampled_from("xyz"), values, min_size=1, max_size=2))
    used = " ".join(f"{{{{ {name} }}}}" for name in axes)
    prompts = {"p0": f"a {used}"}
    for i in range(draw(st.integers(0, 2))):
        prompts[f"p{i + 1}"] = draw(st.sampled_from([f"b{i} {used}", "constant"]))
    models = draw(st.lists(st.sampled_from(["m1", "m2", "m3"]), min_size=1, max_size=2,
                           unique=True))  # fmt: skip
    return {"prompts": prompts, "vars": axes, "params": {"model": models},
            "repeats": draw(st.integers(1, 3))}  # fmt: skip


@FOREIGN_GARBAGE
@PROPERTY
@given(grids(), st.integers(1, 7))
def test_n_shards_cover_the_grid_exactly_once(data: dict, count: int) -> None:
    exp = experiment(data)
    whole = walk(exp)
    parts = [walk(exp, Shard(i, count)) for i in range(count)]
    indexes = sorted(i for part in parts for i, _ in part)
    assert indexes == list(range(exp.total))  # every cell once: none lost, none twice
    # A request is in one shard only: twins (a prompt that ignores a var) never split.
    owner = {}
    for number, part in enumerate(parts):
        for _, cell_id in part:
            assert owner.setdefault(cell_id, number) == number
    assert dict(whole) == {i: c for part in parts for i, c in part}  # the same cells, same ids


@FOREIGN_GARBAGE
@PROPERTY
@given(grids(), st.integers(2, 5), st.data())
def test_a_cells_shard_depends_on_its_request_alone(data: dict, count: int, more) -> None:
    exp = experiment(data)
    mine = {i: {c for _, c in walk(exp, Shard(i, count))} for i in range(count)}
    # The axes in another order, and one more value on an axis: every cell that was there
    # stays in its shard (its index may change; its request does not).
    name = more.draw(st.sampled_from(sorted(data["vars"])))
    reordered = dict(reversed(list(data["vars"].items())))
    reordered[name] = [*reordered[name], 99]
    again = experiment({**data, "vars": reordered})
    for i in range(count):
        assert mine[i] <= {c for _, c in walk(again, Shard(i, count))}


def test_shards_are_even_to_within_chance() -> None:
    exp = experiment({"prompts": {"p": "{{ x }}"}, "vars": {"x": list(range(4000))},
                      "params": {"model": "m"}})  # fmt: skip
    sizes = [len(walk(exp, Shard(i, 4))) for i in range(4)]
    assert sum(sizes) == 4000 and all(900 < size < 1100 for size in sizes)


def test_survey_names_the_grid_by_its_cells() -> None:
    exp = experiment({"prompts": {"p": "{{ x }}"}, "vars": {"x": [1, 2, 3]},
                      "params": {"model": "m"}})  # fmt: skip
    config = resolve(exp, RunOptions())
    share = survey(cell_ids(config), Shard(1, 2))
    assert share.cells == 3 and share.held == len(walk(exp, Shard(1, 2)))
    assert share.grid == survey(cell_ids(config), Shard(0, 2)).grid  # one grid, any shard
    other = experiment({"prompts": {"p": "{{ x }}!"}, "vars": {"x": [1, 2, 3]},
                        "params": {"model": "m"}})  # fmt: skip
    assert survey(cell_ids(resolve(other, RunOptions())), Shard(1, 2)).grid != share.grid
    assert GridShare.of_record(share.record(), share.held) == share


# ------------------------------------------------------------------------- where from


@pytest.mark.parametrize(
    ("spec", "environ", "expected"),
    [
        pytest.param("2/8", {}, (2, 8), id="explicit"),
        pytest.param(" 0 / 1 ", {}, (0, 1), id="spaces"),
        pytest.param((3, 4), {}, (3, 4), id="tuple"),
        pytest.param(
            "auto",
            {"JOB_COMPLETION_INDEX": "3", "PROMPTGRID_SHARD_COUNT": "4"},
            (3, 4),
            id="kubernetes",
        ),
        pytest.param("auto/4", {"JOB_COMPLETION_INDEX": "0"}, (0, 4), id="kubernetes-count"),
        pytest.param(
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "5",
                "SLURM_ARRAY_TASK_COUNT": "10",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "9",
            },
            (5, 10),
            id="slurm",
        ),
        pytest.param(
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "1",
                "SLURM_ARRAY_TASK_COUNT": "8",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "8",
            },
            (0, 8),
            id="slurm-from-1",
        ),
        pytest.param(
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "20",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "30",
                "SLURM_ARRAY_TASK_STEP": "10",
            },
            (2, 4),
            id="slurm-step",
        ),
        pytest.param(
            "auto/10",
            {"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "10"},
            (9, 10),
            id="slurm-agreeing-count",
        ),
    ],
)
def test_where_the_shard_comes_from(spec, environ: dict, expected: tuple[int, int]) -> None:
    assert parse_shard(spec, environ) == Shard(*expected)


@pytest.mark.parametrize(
    ("spec", "environ", "said"),
    [
        pytest.param("8/8", {}, "I/N", id="index-past-count"),
        pytest.param("3", {}, "I/N", id="no-count"),
        pytest.param("-1/4", {}, "I/N", id="negative"),
        pytest.param("1/0", {}, "at least one shard", id="zero"),
        pytest.param("half", {}, "I/N", id="words"),
        pytest.param((1, 2, 3), {}, "I/N", id="long-tuple"),
        pytest.param("auto", {}, "matrix.shard", id="no-runner"),
        pytest.param(
            "auto",
            {"JOB_COMPLETION_INDEX": "1"},
            "PROMPTGRID_SHARD_COUNT",
            id="kubernetes-without-count",
        ),
        pytest.param(
            "auto/4", {"JOB_COMPLETION_INDEX": "4"}, "completions", id="kubernetes-index-too-high"
        ),
        pytest.param("auto/4", {"JOB_COMPLETION_INDEX": "x"}, "whole number", id="not-a-number"),
        pytest.param(
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "4",
                "SLURM_ARRAY_TASK_COUNT": "3",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "9",
            },
            "evenly spaced",
            id="slurm-list",
        ),
        pytest.param(
            "auto/5",
            {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "10"},
            "10 tasks",
            id="slurm-other-count",
        ),
        pytest.param(
            "auto",
            {"SLURM_ARRAY_TASK_ID": "1", "JOB_COMPLETION_INDEX": "1"},
            "both",
            id="two-runners",
        ),
    ],
)
def test_a_shard_that_cannot_be_is_one_clear_error(spec, environ: dict, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        parse_shard(spec, environ)


def test_auto_reads_the_environment_of_this_process(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("PROMPTGRID_SHARD_COUNT", "3")
    exp = experiment({"prompts": {"p": "{{ x }}"}, "vars": {"x": list(range(30))},
                      "params": {"model": "m"}})  # fmt: skip
    plan = promptgrid.plan(exp, results_dir=tmp_path, shard="auto")
    assert plan.shard == "1/3" and plan.total == len(walk(exp, Shard(1, 3)))


# ------------------------------------------------------------------------- plan and config


def test_a_shards_plan_shows_its_share(tmp_path: Path) -> None:
    exp = experiment({"prompts": {"p": "{{ x }}", "q": "{{ x }}?"},
                      "vars": {"x": list(range(50))}, "params": {"model": "m"}})  # fmt: skip
    plans = [promptgrid.plan(exp, results_dir=tmp_path, shard=(i, 3)) for i in range(3)]
    assert sum(p.total for p in plans) == exp.total == 100
    assert sum(p.prompt_tokens for p in plans) == pytest.approx(
        promptgrid.plan(exp, results_dir=tmp_path).prompt_tokens, abs=3
    )
    text = str(plans[1])
    assert "shard 1/3 calls" in text and f"{plans[1].total:,}\n" in text
    assert "its share of the grid's 100 calls" in text
    assert plans[1].to_dict()["grid_total"] == 100


def test_a_resume_keeps_the_runs_shard(tmp_path: Path) -> None:
    exp = experiment({"prompts": {"p": "{{ x }}"}, "vars": {"x": [1, 2, 3]},
                      "params": {"model": "m"}})  # fmt: skip
    recorded = {"shard": {"index": 1, "count": 2, "grid": "g", "cells": 3}}
    assert resolve(exp, RunOptions(), recorded=recorded).shard == Shard(1, 2)
    assert resolve(exp, RunOptions(shard=Shard(1, 2)), recorded=recorded).shard == Shard(1, 2)
    with pytest.raises(UsageError, match="this run is shard 1/2, not shard 0/2"):
        resolve(exp, RunOptions(shard=Shard(0, 2)), recorded=recorded)
    with pytest.raises(UsageError, match="this run is the whole grid"):
        resolve(exp, RunOptions(shard=Shard(0, 2)), recorded={})


def test_a_race_cannot_be_cut_into_shards() -> None:
    exp = experiment({
        "prompts": {"a": "{{ x }}", "b": "{{ x }}!"}, "vars": {"x": [1, 2, 3]},
        "params": {"model": "m"}, "scores": {"ok": {"contains": "echo"}},
        "race": {"score": "ok", "min_cases": 1},
    })  # fmt: skip
    with pytest.raises(UsageError, match="race"):
        resolve(exp, RunOptions(shard=Shard(0, 2)))


# ------------------------------------------------------------------------- what a merge takes


def shard_run(source: str, index: int, *, count: int = 3, grid: str = "g", done: int = 10,
              status: str = "finished", run_id: str | None = None, experiment: str = "e",
              scores: str = "s", owner: str | None = None) -> ShardRun:  # fmt: skip
    share = GridShare(Shard(index, count), grid, 30, 10)
    run_id = run_id or f"2026-{source}-{index}"
    return ShardRun(Path(source), run_id, experiment, share, status, done, done, scores, owner)


def test_a_merge_takes_each_shard_once_and_names_what_lacks() -> None:
    a0, b1 = shard_run("a", 0), shard_run("b", 1, done=4, status="interrupted")
    b1_again = shard_run("c", 1, done=10, run_id="2025-older-but-finished")
    plan = plan_merge([(Path("a"), [a0]), (Path("b"), [b1]), (Path("c"), [b1_again])])
    assert plan.chosen == {0: a0, 1: b1_again} and plan.missing == [2]
    assert plan.duplicates == [(b1_again, b1)] and not plan.complete
    copy = shard_run("copy-of-a", 0, run_id=a0.run_id)  # the same run, from a copied folder
    plan = plan_merge([(Path("a"), [a0]), (Path("copy-of-a"), [copy])])
    assert list(plan.chosen) == [0] and len(plan.duplicates) == 1


@pytest.mark.parametrize(
    ("runs", "said"),
    [
        pytest.param(
            [shard_run("a", 0), shard_run("b", 1, experiment="other")],
            "different experiments",
            id="experiments",
        ),
        pytest.param(
            [shard_run("a", 0), shard_run("b", 1, grid="edited")], "different versions", id="grids"
        ),
        pytest.param([shard_run("a", 0), shard_run("b", 1, count=4)], "into 3 and 4", id="counts"),
        pytest.param(
            [shard_run("a", 0), shard_run("b", 1, scores="t")], "score differently", id="scores"
        ),
    ],
)
def test_shards_that_are_not_of_one_grid_are_refused(runs: list[ShardRun], said: str) -> None:
    with pytest.raises(UsageError, match=said):
        plan_merge([(run.source, [run]) for run in runs])


def test_a_folder_without_shards_and_a_shard_still_running_are_refused() -> None:
    with pytest.raises(UsageError, match="holds no shard"):
        plan_merge([(Path("a"), [shard_run("a", 0)]), (Path("b"), [])])
    running = shard_run("b", 1, status="running", owner="4242@host")
    with pytest.raises(RunOwned, match=r"still running .*4242@host"):
        plan_merge([(Path("a"), [shard_run("a", 0)]), (Path("b"), [running])])


def test_shard_of_reads_the_hash_as_a_number() -> None:
    assert shard_of("0" * 15 + "7" + "f" * 16, 4) == 3
    assert Shard(3, 4).holds("0" * 15 + "7" + "f" * 16)
