"""Shards: one grid cut into N disjoint, stable parts, one per machine, joined again by a merge.

A cell belongs to shard ``shard_of(cell_id, N)``: its request hash (see ``grid``) read as a
number, modulo N. So a cell's shard depends on what it sends and on nothing else — not on the
order of the axes, nor on the other cells: adding a case moves no other cell, and the N shards
cover the grid exactly once. Cells that send the same request (a de-duplicated twin, the same
prompt reached twice) share a hash and so a shard: no shard pays for another's request. Repeats
are distinct requests (the repeat index is hashed), so they spread over the shards.

A shard is a normal run of the cells it holds (the grid's walk, filtered): its own store,
resume, retry, budget. It records which shard it is, of which grid (:class:`GridShare`: the
digest of every cell id of the grid in order, so two shards are of one grid exactly when they
would have made the same cells at the same indexes), in the run's recorded configuration.

Scores are computed where the graded cells are: a shard's judges grade its own cells. A judge
request that cells of two shards happen to share (the same answer under the same rubric) is
then paid by each shard, where one machine would have paid once.

Which shard a process runs comes from ``--shard I/N`` (counting from 0), or from the job runner
with ``--shard auto`` (:func:`parse_shard`): a Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX``
with the count from ``auto/N`` or ``PROMPTGRID_SHARD_COUNT``; a Slurm array's
``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT`` (ids counted from
``SLURM_ARRAY_TASK_MIN`` by ``SLURM_ARRAY_TASK_STEP``). The environment is read only when asked
(``auto``): an array job whose tasks run different files must not silently run a part of each.

The merge (``promptgrid.store.merge`` does the copy) chooses its shards here
(:func:`plan_merge`): each source's newest shard fixes the grid, every source must agree, each
shard index is taken once (the most complete of its runs), and what is missing or unfinished is
named. Everything in this module is a value or a function of values: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import money
from .errors import ExitCode, RunOwned, UsageError

__all__ = [
    "SHARD_COUNT_ENV", "GridShare", "MergePlan", "Merged", "Shard", "ShardRun", "ShardSpec",
    "parse_shard", "plan_merge", "recorded_shard", "shard_of", "survey",
]  # fmt: skip

#: The environment variable that gives the number of shards where the job runner does not
#: (a Kubernetes Indexed Job's ``completions``).
SHARD_COUNT_ENV = "PROMPTGRID_SHARD_COUNT"
_K8S = "JOB_COMPLETION_INDEX"
_SLURM = "SLURM_ARRAY_TASK_ID"
_FORMS = (
    "give I/N (the I-th of N shards, counting from 0: 0/4 ... 3/4), auto (index and count from "
    "the job runner: a Slurm array, or a Kubernetes Indexed Job with "
    f"{SHARD_COUNT_ENV}), or auto/N (the index from the job runner)"
)


def shard_of(cell_id: str, count: int) -> int:
    """The shard (0 … ``count``-1) a cell belongs to: its request hash (hex) as a number,
    modulo ``count``. 64 bits of a SHA-256 make the parts even to within chance."""
    return int(cell_id[:16], 16) % count


@dataclass(frozen=True)
class Shard:
    """The ``index``-th of ``count`` shards (``index`` from 0)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise UsageError(f"shard {self.index}/{self.count}: {_FORMS}")

    def holds(self, cell_id: str) -> bool:
        """Whether the cell with this request hash is this shard's."""
        return shard_of(cell_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


#: What ``--shard`` and ``shard=`` take: ``"I/N"``, ``"auto"``, ``"auto/N"``, ``(I, N)``.
ShardSpec = str | tuple[int, int] | Shard


def parse_shard(spec: ShardSpec, environ: Mapping[str, str]) -> Shard:
    """The shard ``spec`` names, reading the job runner's variables in ``environ`` for
    ``auto``; a :class:`UsageError` saying what to give otherwise."""
    if isinstance(spec, Shard):
        return spec
    if isinstance(spec, tuple):
        if len(spec) != 2 or not all(type(x) is int for x in spec):
            raise UsageError(f"shard {spec!r}: {_FORMS}")
        return Shard(*spec)
    text = str(spec).strip().lower()
    match = re.fullmatch(r"(\d+|auto)\s*(?:/\s*(\d+))?", text)
    if match is None or (match[1] != "auto" and match[2] is None):
        raise UsageError(f"--shard {spec!r}: {_FORMS}")
    count = int(match[2]) if match[2] is not None else None
    if count == 0:
        raise UsageError(f"--shard {spec!r}: there is at least one shard; {_FORMS}")
    if match[1] != "auto":
        assert count is not None
        return Shard(int(match[1]), count)
    return _from_runner(environ, count)


def _from_runner(environ: Mapping[str, str], count: int | None) -> Shard:
    """``auto``: the index (and count) the job runner gives this process."""
    if count is None and environ.get(SHARD_COUNT_ENV, "").strip():
        count = _number(environ, SHARD_COUNT_ENV, least=1)
    k8s, slurm = environ.get(_K8S, "").strip(), environ.get(_SLURM, "").strip()
    if k8s and slurm:
        raise UsageError(
            f"--shard auto: both {_K8S} (Kubernetes) and {_SLURM} (Slurm) are set, so which "
            "one numbers the shards is unclear: give --shard I/N"
        )
    if slurm:
        index, tasks = _slurm(environ)
        if count is not None and count != tasks:
            raise UsageError(
                f"--shard auto: {count} shards were asked for, and the Slurm array has {tasks} "
                "tasks (SLURM_ARRAY_TASK_COUNT): make them agree, or leave the count out "
                f"(--shard auto, without {SHARD_COUNT_ENV})"
            )
        return Shard(index, tasks)
    if k8s:
        if count is None:
            raise UsageError(
                f"--shard auto: {_K8S} is set (a Kubernetes Indexed Job) and the number of "
                f"shards is not: give --shard auto/N or set {SHARD_COUNT_ENV}=N, with N the "
                "Job's spec.completions"
            )
        index = _number(environ, _K8S)
        if index >= count:
            raise UsageError(f"--shard auto: {_K8S}={index} is not below the {count} shards: "
                             "make the count the Job's spec.completions")  # fmt: skip
        return Shard(index, count)
    raise UsageError(
        f"--shard auto: no job runner's shard index in the environment ({_K8S} of a Kubernetes "
        f"Indexed Job, {_SLURM} of a Slurm array); give --shard I/N, e.g. "
        "--shard ${{ matrix.shard }}/4 in a GitHub Actions matrix"
    )


def _slurm(environ: Mapping[str, str]) -> tuple[int, int]:
    """(index from 0, count) of this task of a Slurm array: ids may start anywhere (``MIN``)
    and step (``STEP``), and must be evenly spaced (``--array=1-8`` or ``0-30:10``, not
    ``1,4,9``)."""
    task = _number(environ, _SLURM)
    low = _number(environ, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in environ else 0
    step = _number(environ, "SLURM_ARRAY_TASK_STEP", least=1) if (
        "SLURM_ARRAY_TASK_STEP" in environ) else 1  # fmt: skip
    if "SLURM_ARRAY_TASK_COUNT" in environ:
        tasks = _number(environ, "SLURM_ARRAY_TASK_COUNT", least=1)
    elif "SLURM_ARRAY_TASK_MAX" in environ:
        tasks = (_number(environ, "SLURM_ARRAY_TASK_MAX") - low) // step + 1
    else:
        raise UsageError("--shard auto: SLURM_ARRAY_TASK_ID is set without "
                         "SLURM_ARRAY_TASK_COUNT: give --shard auto/N")  # fmt: skip
    high = environ.get("SLURM_ARRAY_TASK_MAX")
    spaced = high is None or (int(high) - low) // step + 1 == tasks
    if (task - low) % step or not spaced or not 0 <= (task - low) // step < tasks:
        raise UsageError(
            f"--shard auto: the Slurm array's task ids are not evenly spaced from "
            f"SLURM_ARRAY_TASK_MIN={low} (task {task} of {tasks}): submit it with "
            f"--array=0-{tasks - 1}, or give --shard I/N"
        )
    return (task - low) // step, tasks


def _number(environ: Mapping[str, str], name: str, least: int = 0) -> int:
    text = environ.get(name, "").strip()
    if not text.isdigit() or int(text) < least:
        raise UsageError(f"--shard auto: {name}={text!r} is not a whole number"
                         + (f" of at least {least}" if least else ""))  # fmt: skip
    return int(text)


@dataclass(frozen=True)
class GridShare:
    """What a shard's run records of the grid it is part of."""

    shard: Shard
    grid: str  #: the digest of the grid's cell ids, in grid order: the grid's identity
    cells: int  #: cells in the whole grid
    held: int  #: cells in this shard

    def record(self) -> dict[str, Any]:
        """As the run's recorded configuration holds it (``shard``)."""
        return {"index": self.shard.index, "count": self.shard.count, "grid": self.grid,
                "cells": self.cells}  # fmt: skip

    @classmethod
    def of_record(cls, record: Mapping[str, Any], held: int) -> GridShare:
        """The share a run recorded (``held``: the run's total)."""
        shard = Shard(int(record["index"]), int(record["count"]))
        return cls(shard, str(record["grid"]), int(record["cells"]), held)


def recorded_shard(options: Mapping[str, Any]) -> Shard | None:
    """The shard a run's recorded configuration names (None: the whole grid)."""
    kept = options.get("shard")
    return Shard(int(kept["index"]), int(kept["count"])) if kept else None


def survey(cell_ids: Iterable[str], shard: Shard) -> GridShare:
    """Walk the whole grid's cell ids once: its digest, its size, and the shard's share."""
    digest = hashlib.sha256()
    cells = held = 0
    for cell_id in cell_ids:
        digest.update(cell_id.encode())
        cells += 1
        held += shard_of(cell_id, shard.count) == shard.index
    return GridShare(shard, digest.hexdigest()[:32], cells, held)


# ----------------------------------------------------------------------------- the merge


@dataclass(frozen=True)
class ShardRun:
    """A shard's run, as a source store holds it."""

    source: Path  #: the results folder it is in
    run_id: str
    experiment: str
    share: GridShare
    status: str  #: as ``promptgrid runs`` shows it
    done: int  #: cells with a result row
    ok: int
    scores: str  #: the digest of its ``scores:`` (shards must score alike)
    owner: str | None = None  #: the live process executing it (pid@host), if any

    @property
    def shard(self) -> Shard:
        """Which shard it is."""
        return self.share.shard

    @property
    def complete(self) -> bool:
        """Finished, with a row for every cell of the shard."""
        return self.status == "finished" and self.done >= self.share.held

    def __str__(self) -> str:
        return f"shard {self.shard} ({self.source}, run {self.run_id})"


@dataclass(frozen=True)
class MergePlan:
    """What a merge takes: one run per shard index, and what it lacks."""

    experiment: str
    grid: str
    count: int
    cells: int
    chosen: dict[int, ShardRun]  #: shard index -> the run taken for it
    missing: list[int] = field(default_factory=list)  #: shard indexes no source holds
    #: (taken, left) for each shard given more than once
    duplicates: list[tuple[ShardRun, ShardRun]] = field(default_factory=list)

    @property
    def incomplete(self) -> list[ShardRun]:
        """The shards taken that are not finished (interrupted, stopped, batches out)."""
        return [run for _, run in sorted(self.chosen.items()) if not run.complete]

    @property
    def complete(self) -> bool:
        """Every shard is there, finished."""
        return not self.missing and not self.incomplete


def plan_merge(sources: Sequence[tuple[Path, Sequence[ShardRun]]]) -> MergePlan:
    """Choose what to merge from each source's shard runs (see the module docstring).

    Raises :class:`UsageError` for a source without shards, sources of different grids (other
    experiments, or other versions of one), shards split differently or scored differently;
    :class:`RunOwned` when a shard of the grid is still running."""
    newest: dict[Path, ShardRun] = {}
    for source, runs in sources:
        if not runs:
            raise UsageError(f"{source} holds no shard (a run made with --shard): give the "
                             "results folders of the shards")  # fmt: skip
        newest[source] = max(runs, key=lambda r: r.run_id)  # run ids sort by time
    kinds = {(r.experiment, r.share.grid) for r in newest.values()}
    if len(kinds) > 1:
        listed = "; ".join(f"{s}: experiment {r.experiment!r}, grid {r.share.grid[:8]}"
                           for s, r in newest.items())  # fmt: skip
        raise UsageError(
            f"the shards are of different experiments, or of different versions of one "
            f"({listed}): merge the shards of one grid (--experiment NAME picks an experiment's)"
        )
    first = next(iter(newest.values()))
    runs = [r for _, rs in sources for r in rs if r.share.grid == first.share.grid]
    _check_alike(runs)
    chosen: dict[int, ShardRun] = {}
    duplicates: list[tuple[ShardRun, ShardRun]] = []
    for run in sorted(runs, key=_completeness, reverse=True):
        taken = chosen.setdefault(run.shard.index, run)
        if taken is not run:
            duplicates.append((taken, run))
    live = [r for r in runs if r.owner is not None]
    if live:
        raise RunOwned(
            f"{live[0]} is still running (process {live[0].owner}): a merge reads finished "
            "work only; let it finish (or stop it), then merge"
        )
    count = first.shard.count
    return MergePlan(first.experiment, first.share.grid, count, first.share.cells, chosen,
                     [i for i in range(count) if i not in chosen], duplicates)  # fmt: skip


def _check_alike(runs: Sequence[ShardRun]) -> None:
    """Shards of one grid must be cut alike and score alike."""
    counts = sorted({r.shard.count for r in runs})
    if len(counts) > 1:
        raise UsageError(
            "the shards cut the grid differently (into "
            + " and ".join(map(str, counts))
            + " shards): merge shards of one --shard I/N count"
        )
    if len({r.scores for r in runs}) > 1:
        raise UsageError(
            "the shards score differently (their scores: differ): score them alike first "
            "(promptgrid score RUN_ID --scores FILE --results-dir DIR in each), then merge"
        )


def _completeness(run: ShardRun) -> tuple[bool, int, int, str]:
    """Which of a shard's runs to take: a finished one, then the most cells done (of which the
    most ok), then the newest."""
    return run.complete, run.done, run.ok, run.run_id


@dataclass
class Merged:
    """What a merge made (``promptgrid.merge``): the merged run, the shards it holds and what
    it lacks. ``print(merged)`` says it all; ``promptgrid.load(merged.run_id,
    results_dir=merged.results_dir)`` is its table."""

    run_id: str
    experiment: str
    results_dir: Path
    status: str  #: ``finished``, or ``incomplete`` (a shard missing or unfinished)
    plan: MergePlan
    counts: dict[str, int]  #: result rows by status (ok, error), and cached
    spent: float  #: USD the shards paid, together
    files: list[Path] = field(default_factory=list)
    source: str | None = None  #: the experiment file the shards were run from

    @property
    def missing(self) -> list[int]:
        """Shard indexes no source held."""
        return self.plan.missing

    @property
    def incomplete(self) -> list[ShardRun]:
        """The shards merged that were not finished."""
        return self.plan.incomplete

    @property
    def exit_code(self) -> ExitCode:
        """7 when the merged run lacks cells, 3 when it has error rows, else 0."""
        if self.status != "finished":
            return ExitCode.INCOMPLETE
        return ExitCode.ERROR_ROWS if self.counts.get("error") else ExitCode.OK

    def summary(self) -> list[str]:
        """The merged run, each shard, and the files."""
        plan, counts = self.plan, self.counts
        done = counts.get("ok", 0) + counts.get("error", 0)
        lines = [
            f"merged run {self.run_id} ({self.experiment}): {len(plan.chosen)} of {plan.count} "
            f"shards, {done:,} of {plan.cells:,} cells ({counts.get('ok', 0):,} ok, "
            f"{counts.get('error', 0):,} errors, {counts.get('cached', 0):,} cached), "
            f"{money.usd(self.spent)} spent, {self.status}"
        ]
        for index, run in sorted(plan.chosen.items()):
            lines.append(f"  shard {index}/{plan.count}  {run.status:<11} "
                         f"{run.done:>7,}/{run.share.held:<7,} cells  {run.source} "
                         f"(run {run.run_id})")  # fmt: skip
        return lines + [f"  {path}" for path in self.files]

    def problems(self) -> list[str]:
        """What the merged run lacks and what to do; the shards given twice."""
        file = self.source or "FILE"
        lines = []
        for index in self.missing:
            lines.append(
                f"missing: shard {index}/{self.plan.count}, in none of the folders given: run "
                f"it (promptgrid run {file} --shard {index}/{self.plan.count} --results-dir "
                "DIR) and merge again with its folder"
            )
        for run in self.incomplete:
            lines.append(
                f"incomplete: {run} is {run.status} with {run.done:,} of {run.share.held:,} "
                f"cells: finish it where it ran (promptgrid run {file} --resume {run.run_id} "
                f"--results-dir {run.source}) and merge again"
            )
        for taken, left in self.plan.duplicates:
            what = (
                "given twice"
                if taken.run_id == left.run_id
                else f"run twice (run {left.run_id} in {left.source} left out)"
            )
            lines.append(f"note: shard {taken.shard} {what}: took {taken.source} (run "
                         f"{taken.run_id}, {taken.done:,} cells)")  # fmt: skip
        if self.status != "finished":
            lines.append(f"the merged run {self.run_id} is incomplete: merging again updates it")
        return lines

    def __str__(self) -> str:
        return "\n".join([*self.summary(), *self.problems()])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        from .terminal import visible

        printer.text(visible(str(self)))
