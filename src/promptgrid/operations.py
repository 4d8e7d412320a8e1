"""What the CLI alone needs: the operations behind its commands, under the public API.

The public API (``promptgrid.run``, ``retry``, ``collect``, ``score``, ``batch_status``, ...)
hands back tables. A command needs more: a run's outcome (counts, spend, the files written, why
it stopped, its exit code) to print and to exit with, the list of runs, a run's batches as
rows, a stored run's files written again. Each is a function here with an explicit signature.
The CLI reaches the library only through this module, the public names (``promptgrid.api``,
``promptgrid.analysis``, ``promptgrid.errors``) and ``promptgrid.terminal`` for printing; the
API's ``run``, ``retry``, ``collect``, ``score``, ``batch_status`` and ``cancel_batches`` are
built on the same functions, so a command and its Python function cannot drift apart.

A run a command makes is a :class:`Job` — what to run, with which options, which cells —
built and checked (:func:`run_job`, :func:`retry_job`, :func:`collect_job`) before anything
runs, then :func:`execute` d with a :class:`RunHandle` whose stops and notes the CLI prints.

The batch commands: :func:`batch_rows` reads a run's chunks and asks the provider how each
batch stands without writing anything (it needs no lease); :func:`cancel_rows` asks the
provider to stop them, under the run's lease.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import spec
from ._sync import RunHandle, run_sync
from .config import RunConfig, RunOptions
from .errors import Problem, RetryableError, SpecError, UsageError
from .exports import Repeats, parse_formats
from .money import usd
from .runner import RunOutcome, Selection, rescore
from .runner import execute as execute_async
from .spec import json_schema
from .store import Owner, RunInfo, Store, leases
from .store import batch as batchstore
from .table import resolve_run

if TYPE_CHECKING:
    import pandas as pd

    from .shards import ShardSpec
    from .store.batch import Chunk

__all__ = [
    "BatchRow", "Job", "Repeats", "RunHandle", "RunLine", "RunOutcome", "ScoresSource",
    "batch_rows", "cancel_rows", "collect_job", "execute", "export_run", "find_runs",
    "json_schema", "race_lines", "require_batches", "results_folder", "retry_job", "run_job",
    "run_lines", "run_options", "score_columns", "score_run", "stored_experiment", "usd",
    "with_scores",
]  # fmt: skip

#: What ``score`` takes as scores: a YAML file (``scores:`` in it, or the mapping alone), or a
#: mapping shaped like the file's ``scores:``.
ScoresSource = str | Path | Mapping[str, Any]


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Job:
    """A run to make, resume, retry or collect: the experiment, the options, which cells."""

    experiment: spec.Experiment
    options: RunOptions
    selection: Selection


def run_options(
    *,
    results_dir: str | Path,
    provider: str | None = None,
    base_url: str | None = None,
    rpm: float | None = None,
    tpm: int | None = None,
    concurrency: int | None = None,
    formats: str | Sequence[str] | None = None,
    use_cache: bool | None = None,
    max_cost: float | None = None,
    progress: bool | None = None,
    grace_s: float = 5.0,
    batch: bool | None = None,
    wait: bool = False,
    race: Mapping[str, Any] | bool | None = None,
    shard: ShardSpec | None = None,
) -> RunOptions:
    """RunOptions from the public keywords (``formats`` parsed, ``race`` checked, the
    ``shard`` read, from the job runner's environment for ``auto``, ``results_dir`` a Path
    that must be valid UTF-8)."""
    import os

    from .race.options import check_option
    from .shards import parse_shard

    return RunOptions(
        results_dir=results_folder(results_dir), provider=provider, base_url=base_url,
        rpm=rpm, tpm=tpm, concurrency=concurrency,
        formats=None if formats is None else parse_formats(formats), use_cache=use_cache,
        max_cost=max_cost, progress=progress, grace_s=grace_s, batch=batch, wait=wait,
        race=check_option(race), shard=None if shard is None else parse_shard(shard, os.environ),
    )  # fmt: skip


def results_folder(path: str | Path) -> Path:
    """A results folder given by a caller (``UsageError`` for a name that is not UTF-8)."""
    from .spec.yamlmarks import not_utf8

    shown = not_utf8(Path(path))
    if shown is not None:
        raise UsageError(f"the results folder {shown} is not valid UTF-8: rename it, or choose "
                         "another --results-dir")  # fmt: skip
    return Path(path)


def run_job(
    experiment: spec.Experiment,
    *,
    resume: bool = False,
    run_id: str | None = None,
    results_dir: str | Path = "results",
    provider: str | None = None,
    base_url: str | None = None,
    rpm: float | None = None,
    tpm: int | None = None,
    concurrency: int | None = None,
    formats: str | Sequence[str] | None = None,
    use_cache: bool | None = None,
    max_cost: float | None = None,
    progress: bool | None = None,
    grace_s: float = 5.0,
    batch: bool | None = None,
    wait: bool = False,
    race: Mapping[str, Any] | bool | None = None,
    shard: ShardSpec | None = None,
) -> Job:
    """A new run of ``experiment``, or (``resume``, or ``run_id``) the continuation of the
    latest unfinished one, or of that one (``promptgrid.run``)."""
    options = run_options(
        results_dir=results_dir, provider=provider, base_url=base_url, rpm=rpm, tpm=tpm,
        concurrency=concurrency, formats=formats, use_cache=use_cache, max_cost=max_cost,
        progress=progress, grace_s=grace_s, batch=batch, wait=wait, race=race, shard=shard,
    )  # fmt: skip
    selection = Selection("resume", run_id) if resume or run_id else Selection()
    return Job(experiment, options, selection)


def retry_job(
    run_id: str,
    *,
    results_dir: str | Path = "results",
    rpm: float | None = None,
    tpm: int | None = None,
    concurrency: int | None = None,
    formats: str | Sequence[str] | None = None,
    max_cost: float | None = None,
    progress: bool | None = None,
    grace_s: float = 5.0,
    batch: bool | None = None,
    wait: bool = False,
) -> Job:
    """The error rows of a stored run, sent again where the run went (``promptgrid.retry``)."""
    experiment, info = stored_experiment(run_id, results_dir=results_dir)
    options = run_options(
        results_dir=results_dir, rpm=rpm, tpm=tpm, concurrency=concurrency, formats=formats,
        max_cost=max_cost, progress=progress, grace_s=grace_s, batch=batch, wait=wait,
    )  # fmt: skip
    return Job(experiment, options, Selection("retry", info.run_id))


def collect_job(
    run_id: str,
    *,
    results_dir: str | Path = "results",
    wait: bool = False,
    formats: str | Sequence[str] | None = None,
    progress: bool | None = None,
    grace_s: float = 5.0,
) -> Job:
    """The collection of a batch-mode run's ended batches (``promptgrid.collect``); a run
    without batches is a ``UsageError``."""
    experiment, info = stored_experiment(run_id, results_dir=results_dir)
    require_batches(info, results_dir=results_dir)
    options = run_options(
        results_dir=results_dir, formats=formats, progress=progress, grace_s=grace_s, wait=wait
    )
    return Job(experiment, options, Selection("collect", info.run_id))


def execute(job: Job, handle: RunHandle, *, frame: bool = False) -> RunOutcome:
    """Carry out ``job`` from synchronous code (see ``_sync``): Ctrl-C, SIGTERM and SIGHUP
    stop it through ``handle``. With ``frame``, the outcome carries the run's table."""
    running = execute_async(job.experiment, job.options, job.selection, handle, frame=frame)
    return run_sync(running, handle)


def race_lines(outcome: RunOutcome) -> list[str]:
    """The race of a run that raced, in lines for the terminal after the run's own (winner,
    calls saved; one line each); none if it did not race."""
    if outcome.race is None:
        return []
    from .race.standings import Standings

    return Standings(outcome.race).summary()[1:]


def score_run(
    run_id: str,
    *,
    scores: ScoresSource | None = None,
    results_dir: str | Path = "results",
    max_cost: float | None = None,
    progress: bool | None = None,
    grace_s: float = 5.0,
    handle: RunHandle,
    frame: bool = False,
) -> RunOutcome:
    """(Re)compute a stored run's scores — its own, or ``scores`` — and rewrite its files
    (``promptgrid.score``); stops through ``handle``."""
    experiment, info = stored_experiment(run_id, results_dir=results_dir)
    if scores is not None:
        experiment = with_scores(experiment, scores)
    options = run_options(
        results_dir=results_dir, max_cost=max_cost, progress=progress, grace_s=grace_s
    )
    return run_sync(rescore(experiment, info, options, handle, frame=frame), handle)


def with_scores(experiment: spec.Experiment, scores: ScoresSource) -> spec.Experiment:
    """The experiment with the scores of a YAML file or a mapping."""
    if isinstance(scores, Mapping):
        return experiment.with_scores(scores)
    from .spec.yamlmarks import load_yaml, read_text

    path = Path(scores)
    try:
        text = read_text(path)
    except OSError as exc:
        raise SpecError(Problem(f"cannot read {path}: {exc}")) from None
    data, lines, _ = load_yaml(text, str(path))
    if isinstance(data, dict) and "scores" in data:
        data = data["scores"]  # a file with scores: (an experiment file, say)
    else:  # the mapping alone: its keys are scores
        lines = {("scores", *k): v for k, v in lines.items()}
    if not isinstance(data, dict):
        example = 'e.g. correct: {icontains: "{{ expected }}"}'
        problem = Problem("a scores file maps score names to checks", str(path), 1, hint=example)
        raise SpecError(problem)
    return experiment.with_scores(data, source=str(path), lines=lines, scores_dir=path.parent)


def stored_experiment(
    run_id: str, *, results_dir: str | Path = "results"
) -> tuple[spec.Experiment, RunInfo]:
    """The experiment a run was made from, rebuilt from the store's copy, and the run."""
    with Store.in_dir(results_dir, readonly=True) as store:
        info = resolve_run(store, run_id)
    return _rebuilt(info), info


def _rebuilt(info: RunInfo) -> spec.Experiment:
    """The experiment of a run, from the store's copy; the credentials of its base URLs (not
    stored) come from its file, when that is still there."""
    import json

    from .credentials import HIDDEN, restore_spec
    from .errors import PromptgridError
    from .spec.yamlmarks import load_yaml, read_text

    data = info.spec
    if info.source and HIDDEN in json.dumps(data.get("providers") or {}):
        try:
            current = load_yaml(read_text(Path(info.source)), info.source)[0]
        except (OSError, PromptgridError):
            current = {}
        data = restore_spec(data, current if isinstance(current, dict) else {})
    base = Path(info.source).parent if info.source else Path.cwd()
    return spec.Experiment.from_dict(data, base_dir=base)


# --------------------------------------------------------------------------- stored runs


@dataclass(frozen=True)
class RunLine:
    """One run as ``promptgrid runs`` lists it."""

    info: RunInfo
    ok: int
    errors: int
    spent: float  #: USD
    live: int  #: batches in flight
    endpoints: str  #: where its calls went: ``name host`` each (no credential), ``echo``


def run_lines(
    *, results_dir: str | Path = "results", experiment: str | None = None
) -> list[RunLine]:
    """The runs of the store (of ``experiment``, if given), newest first."""
    with Store.in_dir(results_dir, readonly=True) as store:
        found = store.runs(experiment)
        batches = batchstore.batch_counts(store, [info.run_id for info in found])
        lines = []
        for info in found:
            counts = store.counts(info.run_id)
            lines.append(RunLine(info, counts.get("ok", 0), counts.get("error", 0),
                                 store.spend(info.run_id),
                                 batches.get(info.run_id, (0, 0))[1],
                                 _endpoints(info)))  # fmt: skip
    return lines


def _endpoints(info: RunInfo) -> str:
    """Where a run's calls went: each endpoint as ``name host`` (``echo`` alone); the host
    only, from the public form of its URL, so no credential is ever printed."""
    recorded = info.options.get("endpoints") or {info.spec.get("provider", "openai"): None}
    shown = [f"{name} {host}" if (host := _host(url)) else str(name)
             for name, url in recorded.items()]  # fmt: skip
    return ", ".join(shown)


def _host(url: Any) -> str | None:
    """``host[:port]`` of a URL (none for ``echo`` or what is not a URL)."""
    from urllib.parse import urlsplit

    from .credentials import public_url

    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(public_url(url))
        return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    except ValueError:  # a port that is not a number: the URL as recorded, in public form
        return public_url(url)


def find_runs(
    run_ids: Sequence[str | None], *, results_dir: str | Path = "results"
) -> list[RunInfo]:
    """The stored runs of ``run_ids`` (each an id, a unique prefix, or ``None``: the newest)."""
    with Store.in_dir(results_dir, readonly=True) as store:
        return [resolve_run(store, run_id) for run_id in run_ids]


def export_run(
    run_id: str | None,
    *,
    results_dir: str | Path = "results",
    formats: str | Sequence[str] = "csv",
    output: Path | None = None,
    repeats: Repeats = "stack",
    csv_verbatim: bool = False,
) -> list[Path]:
    """Write a stored run's table (default: the newest run) to ``output`` (a file for one
    format, or a folder; default: the run's folder); the files written."""
    from .exports import export

    with Store.in_dir(results_dir, readonly=True) as store:
        info = resolve_run(store, run_id)
        target = output or Path(results_dir) / info.experiment / info.run_id
        return export(store, info, target, parse_formats(formats), repeats=repeats,
                      csv_verbatim=csv_verbatim)  # fmt: skip


def score_columns(df: pd.DataFrame) -> list[str]:
    """The score columns of a result table (what ``promptgrid contrast`` compares by default).
    Imported when called: importing this module (and the API) does not import pandas."""
    from .analysis.answers import score_columns as found

    return found(df)


# --------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class BatchRow:
    """One batch of a run, as ``promptgrid batch status`` shows it."""

    run_id: str
    chunk: int
    endpoint: str
    state: str  #: the local state (see :mod:`promptgrid.store.batch`)
    batch_id: str | None
    status: str | None  #: the provider's status
    requests: int
    cells: int
    completed: int | None
    failed: int | None
    total: int | None
    bytes: int
    file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    planned_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """As a mapping (a DataFrame row)."""
        return asdict(self)


def require_batches(info: RunInfo, *, results_dir: str | Path = "results") -> None:
    """A run to collect must have batches (``UsageError`` otherwise)."""
    with Store.in_dir(results_dir, readonly=True) as store:
        if info.run_id not in batchstore.batch_counts(store, [info.run_id]):
            raise UsageError(
                f"run {info.run_id} has no batches (it was not run with --batch): nothing to "
                "collect"
            )


def batch_rows(run_id: str | None = None, *, results_dir: str | Path = "results") -> list[BatchRow]:
    """Each batch of a run (default: the newest run that has batches): as recorded, and as the
    provider says it stands now. Writes nothing (the run's owner, if any, records what it
    sees)."""
    config, info = _batch_run(run_id, results_dir)
    return run_sync(_status(config, info))


def cancel_rows(run_id: str, *, results_dir: str | Path = "results") -> list[BatchRow]:
    """Cancel a run's batches (the run's lease is held meanwhile): the provider stops them and
    chunks not yet submitted are dropped (see ``Batcher.cancel``). Collect afterwards: what
    ran is kept."""
    config, info = _batch_run(run_id, results_dir)
    return run_sync(_cancel(config, info, Owner.me()))


def _batch_run(run_id: str | None, results_dir: str | Path) -> tuple[RunConfig, RunInfo]:
    """A run with batches (default: the newest) and its configuration, as recorded."""
    from .config import resolve

    with Store.in_dir(results_dir, readonly=True) as store:
        if run_id is None:
            runs = store.runs()
            counts = batchstore.batch_counts(store, [r.run_id for r in runs])
            found = [r for r in runs if r.run_id in counts]
            if not found:
                raise UsageError(f"no run in {store.path} has batches")
            run_id = found[0].run_id
        info = resolve_run(store, run_id)
    experiment = _rebuilt(info)
    config = resolve(experiment, RunOptions(results_dir=Path(results_dir)), recorded=info.options)
    return config, info


def _row(chunk: Chunk) -> BatchRow:
    return BatchRow(
        chunk.run_id, chunk.chunk, chunk.endpoint, chunk.state, chunk.batch_id,
        chunk.batch_status, chunk.requests, chunk.cells, chunk.completed, chunk.failed,
        chunk.total, chunk.bytes, chunk.file_id, chunk.output_file_id, chunk.error_file_id,
        chunk.planned_at, chunk.updated_at,
    )  # fmt: skip


async def _status(config: RunConfig, run: RunInfo) -> list[BatchRow]:
    from .providers import open_batch_client

    with Store.in_dir(config.results_dir, readonly=True) as store:
        chunks = batchstore.chunks(store, run.run_id)
    if not chunks:
        raise UsageError(f"run {run.run_id} has no batches (it was not run with --batch)")
    rows = [_row(c) for c in chunks]
    wanted = {c.endpoint for c in chunks if c.state == "submitted" and c.batch_id}
    clients = {name: open_batch_client(config.endpoints[name]) for name in sorted(wanted)}
    try:
        for i, chunk in enumerate(chunks):
            if chunk.endpoint not in clients or chunk.batch_id is None:
                continue
            if chunk.state != "submitted" or chunk.batch_status in batchstore.TERMINAL:
                continue
            with contextlib.suppress(RetryableError):  # a flaky poll shows the recorded state
                now = await clients[chunk.endpoint].retrieve(chunk.batch_id)
                rows[i] = BatchRow(**{
                    **rows[i].to_dict(), "status": now.status, "completed": now.completed,
                    "failed": now.failed, "total": now.total,
                })  # fmt: skip
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
    return rows


async def _cancel(config: RunConfig, run: RunInfo, owner: Owner) -> list[BatchRow]:
    from .engine.batch.driver import Batcher
    from .engine.storeio import StoreIO
    from .providers import open_batch_client

    with Store.in_dir(config.results_dir, create=False) as store:
        chunks = batchstore.chunks(store, run.run_id)
        if not chunks:
            raise UsageError(f"run {run.run_id} has no batches (it was not run with --batch)")
        leases.acquire(store, run.run_id, owner)
        before = run.status if run.status != "running" else "interrupted"
        io = StoreIO(Path(store.path), owner, after=0)
        names = {c.endpoint for c in chunks if c.live}
        clients = {name: open_batch_client(config.endpoints[name]) for name in sorted(names)}
        batcher = Batcher(io, config, run, clients)
        try:
            return [_row(c) for c in await batcher.cancel()]
        finally:
            batcher.close()
            for client in clients.values():
                with contextlib.suppress(Exception):
                    await client.aclose()
            io.close()
            with contextlib.suppress(Exception):
                leases.release(store, run.run_id, owner, before)
