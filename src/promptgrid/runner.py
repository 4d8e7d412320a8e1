"""One run, end to end: configuration -> store -> scheduler -> scores -> files.

``execute`` resolves the run's configuration once (for a resume or a retry, from the record
the run left in the store), takes the run's lease, runs the scheduler and exports the files;
only then is the run ``finished``. Everything that belongs to an event loop (providers, their
HTTP clients, limiters) is created here, inside the loop that runs the experiment, and closed
before it returns.

A run with ``scores:`` has two more phases, in the same structured scope and under the same
stop: its judges' calls — cells of their own, sent by a second scheduler through the same
endpoints (limiters, retries), store (claims, cache) and budget — then the scores themselves,
computed from the stored answers chunk by chunk on the store's thread. Scores are computed at
the end rather than as each row is committed: the plain run path does no extra work, the same
code serves ``promptgrid score``, and a resumed run scores exactly what is missing.
``rescore`` (``promptgrid score``) runs only those two phases on a run that exists.

A run of one shard (``--shard I/N``) is this same run over the shard's cells: the grid's walk
filters them (``grid``), and the run records its shard, its size and the grid's digest
(``shards.survey``, one walk of the grid's ids when it is created).

A run in batch mode (``--batch``, ``batch:``) sends its batch endpoints' cells through their
Batch APIs instead (:mod:`.engine.batch`), first in the session: chunks an earlier session
left between two steps are driven on, new ones submitted; the online endpoints run next, without
the cells the batches carry; then the batches are polled and collected — once, or until all are
in (``wait``). A run with batches still at the provider ends the session ``submitted``. The same
``run --batch`` command continues such a run instead of starting another (which would pay for
its requests again): its answers are not in the cache until they are collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import warnings
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._sync import RunHandle
from .config import RunConfig, RunOptions, resolve
from .credentials import public_spec
from .engine.budget import Budget
from .engine.limiter import EndpointLimiter
from .engine.scheduler import Endpoint, Scheduler, Summary
from .engine.storeio import StoreIO
from .errors import BudgetExceeded, ExitCode, PromptgridWarning, StoreError, UsageError
from .exports import export, formats_present
from .exports.prefetch import prefetch
from .grid import cell_ids, expand, expand_only
from .progress import make_progress
from .providers import open_provider
from .race.options import RaceOption, raced, refuse_batches, same_option
from .shards import Shard, recorded_shard, survey
from .spec import Experiment
from .store import HEARTBEAT_S, STORE_NAME, Owner, RunInfo, Store, leases, races
from .store import batch as batchstore
from .store import scores as scorestore
from .table import resolve_run, to_dataframe, with_score_columns

if TYPE_CHECKING:
    from .engine.batch.driver import BatchSummary
    from .engine.batch.session import BatchPhase
    from .progress import Progress
    from .scoring.apply import JudgeRoute, Redo
    from .scoring.worker import ScoringWorker
    from .store.races import RaceRecord

__all__ = ["RunOutcome", "Selection", "execute", "new_run_id", "rescore"]

T = TypeVar("T")


@dataclass(frozen=True)
class Selection:
    """Which run ``execute`` works on: a new one, one to resume (``run_id`` None: the latest
    unfinished run of the experiment), one whose error rows to retry, or one whose batches to
    collect (nothing new is sent)."""

    mode: Literal["new", "resume", "retry", "collect"] = "new"
    run_id: str | None = None


@dataclass
class RunOutcome:
    """What a run did and where its files are."""

    run_id: str
    experiment: str
    total: int
    out_dir: Path
    files: list[Path]
    summary: Summary
    config: RunConfig
    counts: dict[str, int] = field(default_factory=dict)
    status: str = "finished"
    frame: Any = None  # the result table as a DataFrame, when execute(..., frame=True)
    interrupted_by: ExitCode = ExitCode.SIGINT  # which signal, when status is interrupted
    spent: float = 0.0  # USD the run has paid for, all its sessions together
    judged: Summary | None = None  # what the judges' calls did in this session
    #: Per score column: (name, values, mean, errors); and the judges' (calls, cached, errors,
    #: tokens, USD) over the run's life.
    scores: list[tuple[str, int, float | None, int]] = field(default_factory=list)
    judge_totals: tuple[int, int, int, int, float] | None = None
    batch: BatchSummary | None = None  # what batch mode did in this session
    mode: str = "new"  # the Selection's
    signalled: bool = False  # a signal (Ctrl-C, SIGTERM, SIGHUP) stopped this session
    race: RaceRecord | None = None  # the run's race, if it raced

    @property
    def pending(self) -> int:
        """Cells without a result row (none once a race is over: it ran what it needed)."""
        if self.race is not None and self.race.finished:
            return 0
        return self.total - self.counts.get("ok", 0) - self.counts.get("error", 0)

    @property
    def exit_code(self) -> ExitCode:
        """See :class:`~promptgrid.errors.ExitCode`."""
        if self.status == "interrupted" and self.mode == "collect" and not self.signalled:
            return ExitCode.PENDING  # collected what there was; cells wait for a submission
        if self.status == "interrupted" or (self.status == "submitted" and self.signalled):
            return self.interrupted_by
        if self.status == "submitted":  # submitted is success; collecting it, "not yet"
            return ExitCode.PENDING if self.mode == "collect" else ExitCode.OK
        if self.status == "stopped":
            if isinstance(self.summary.stopped_by, BudgetExceeded):
                return ExitCode.BUDGET
            return ExitCode.STOPPED
        return ExitCode.ERROR_ROWS if self.counts.get("error") else ExitCode.OK


def new_run_id() -> str:
    """A run id that sorts by time: ``20261124-105530.123-4f3a`` (UTC)."""
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}.{now.microsecond // 1000:03d}-{secrets.token_hex(2)}"


async def execute(
    experiment: Experiment,
    options: RunOptions,
    selection: Selection = Selection(),
    handle: RunHandle | None = None,
    *,
    frame: bool = False,
) -> RunOutcome:
    """Run (or resume, or retry) an experiment in the running event loop and export its files.

    With ``frame``, the outcome also carries the run's table as a DataFrame."""
    handle = handle or RunHandle()
    owner = Owner.me()
    if selection.mode == "new":
        experiment = raced(experiment, options.race)
        config = resolve(experiment, options)
        refuse_batches(config)
        config.check_keys()  # a missing key is bad input: found before the store is touched
        config.check_budget()
        store = Store.in_dir(config.results_dir)
    else:
        if not (options.results_dir / STORE_NAME).is_file():
            raise UsageError(
                f"no unfinished run of {experiment.name!r} in {options.results_dir} (no store "
                "there): run without --resume, or give the --results-dir the run used"
            )
        store = Store.in_dir(options.results_dir, create=False)
    with store:
        if selection.mode == "new" and config.batch_endpoints:
            selection = _continue_batches(store, experiment, selection, config.shard)
        if selection.mode == "new":
            run = _create(store, config)
        else:
            run, experiment = _find(store, experiment, selection, options.race, options.shard)
            config = resolve(experiment, options, recorded=run.options)
            refuse_batches(config)
            config.check_keys()
            config.check_budget()
        config.warn()
        _disclose(config, handle)
        leases.acquire(store, run.run_id, owner)  # one process executes a run: RunOwned otherwise
        handle.run_id = run.run_id
        status = "failed"
        try:
            skip: set[int] = set()
            if selection.mode != "new":
                skip = store.indexes(run.run_id, "ok" if selection.mode == "retry" else None)
                run = _adopt_scores(store, run, experiment)
            redo: Redo = "errors" if selection.mode == "retry" else "missing"
            prefetch(config.formats, frame=frame)  # the export's imports, while calls wait
            summary, judged, batched = await _schedule(
                store, config, run, skip, owner, handle, redo, mode=selection.mode
            )
            outcome = _finish(store, config, run, summary, handle, frame, judged, batched=batched)
            outcome.mode = selection.mode
            status = outcome.status
            return outcome
        except (asyncio.CancelledError, StoreError):
            status = "interrupted"  # resumable once the cause is fixed
            raise
        finally:
            with contextlib.suppress(StoreError):  # a store that failed may refuse this too
                leases.release(store, run.run_id, owner, status)


async def rescore(
    experiment: Experiment,
    run: RunInfo,
    options: RunOptions,
    handle: RunHandle | None = None,
    *,
    frame: bool = False,
) -> RunOutcome:
    """(Re)compute every score of ``experiment.scores`` on a run's stored answers and rewrite
    its files; the graded model is not called. Judges are called where the cache has no
    verdict for their request. ``run`` is the stored run; its other settings stand."""
    if not experiment.scores:
        raise UsageError(
            f"run {run.run_id} has no scores: give some (promptgrid score {run.run_id} --scores "
            "FILE, or score(run_id, {name: check}))"
        )
    handle = handle or RunHandle()
    owner = Owner.me()
    config = resolve(experiment, options, recorded=run.options)
    for name in set(config.judges.values()):  # only the judges' keys are needed here
        config.endpoints[name].api_key()
    with Store.in_dir(options.results_dir, create=False) as store:
        before = run.status if run.status != "running" else "interrupted"
        leases.acquire(store, run.run_id, owner)
        handle.run_id = run.run_id
        try:  # the run keeps its status: scoring it again does not change its calls
            scorestore.set_scores(store, run.run_id, experiment.to_dict().get("scores", {}))
            run = store.run(run.run_id) or run
            summary, judged, _ = await _schedule(
                store, config, run, set(), owner, handle, "all", graded=False
            )
            return _finish(store, config.with_output(formats=()), run, summary, handle, frame,
                           judged, status=before)  # fmt: skip
        finally:
            with contextlib.suppress(StoreError):
                leases.release(store, run.run_id, owner, before)


def _adopt_scores(store: Store, run: RunInfo, experiment: Experiment) -> RunInfo:
    """A resumed or retried run scores with the experiment's ``scores:`` (they may have been
    edited: they change no request); stored scores of others are dropped."""
    scores = experiment.to_dict().get("scores", {})
    if run.spec.get("scores", {}) == scores:
        return run
    scorestore.set_scores(store, run.run_id, scores)
    return store.run(run.run_id) or run


def _finish(
    store: Store,
    config: RunConfig,
    run: RunInfo,
    summary: Summary,
    handle: RunHandle,
    frame: bool,
    judged: Summary | None = None,
    status: str | None = None,
    *,
    batched: BatchSummary | None = None,
) -> RunOutcome:
    """Export the run's files (and the DataFrame, with ``frame``); the status they earn."""
    counts = store.counts(run.run_id)
    done = counts.get("ok", 0) + counts.get("error", 0)
    race = races.load(store, run.run_id)
    complete = done >= run.total or (race is not None and race.finished)
    if judged is not None:  # a judge phase stopped by the budget or a stop stops the run
        summary.stopped_by = summary.stopped_by or judged.stopped_by
        summary.interrupted = summary.interrupted or judged.interrupted
    live = batched.live if batched is not None else 0
    if batched is not None:
        summary.stopped_by = summary.stopped_by or batched.stopped_by
        summary.interrupted = summary.interrupted or batched.interrupted
    _warn_unbelievable(summary, judged, batched)
    status = (
        "stopped" if summary.stopped_by
        else "submitted" if live and status is None
        else "interrupted" if summary.interrupted or (status is None and not complete)
        else status or "finished"
    )  # fmt: skip
    out_dir = config.results_dir / run.experiment / run.run_id
    tables: list[Any] | None = [] if frame else None
    formats = tuple(dict.fromkeys([*config.formats, *formats_present(out_dir)]))
    run = with_score_columns(store, run)
    files = export(store, run, out_dir, formats, tables)
    table = to_dataframe(iter(tables), run) if tables is not None else None
    scored = bool(run.spec.get("scores"))
    return RunOutcome(
        run.run_id, run.experiment, run.total, out_dir, files, summary, config, counts, status,
        table, handle.exit_code, store.spend(run.run_id), judged,
        scorestore.score_summary(store, run.run_id) if scored else [],
        scorestore.judge_totals(store, run.run_id) if config.judges else None, batched,
        signalled=handle.stops > 0, race=race,
    )  # fmt: skip


async def _schedule(
    store: Store,
    config: RunConfig,
    run: RunInfo,
    skip: set[int],
    owner: Owner,
    handle: RunHandle,
    redo: Redo,
    *,
    graded: bool = True,
    mode: str = "new",
) -> tuple[Summary, Summary | None, BatchSummary | None]:
    """Open the endpoints (in this loop) and the store's thread, and run the scheduler; then,
    with scores, the judges and the scoring. ``graded=False``: only those (``rescore``).
    Batches come first and last (see the module docstring); ``mode`` ``collect`` sends
    nothing new."""
    endpoints: dict[str, Endpoint] = {}
    spent = store.spend(run.run_id)  # by earlier sessions of this run
    floor = int(run.options.get("cache_floor") or 0)
    io = StoreIO(store.path, owner, after=0 if config.use_cache else floor)
    progress = make_progress(run.experiment, config.progress if graded else False)
    wanted = {*config.judges.values(), *(config.routes.values() if graded else ())}
    phase: BatchPhase | None = None
    if graded and (config.batch_endpoints or _live_batches(store, run.run_id)):
        from .engine.batch.session import (
            BatchPhase,  # the openai SDK: only when batches are involved
        )

        phase = BatchPhase.open(store, config, run, io, spent=spent, note=handle.note)
    try:
        online = set(config.routes.values()) - set(config.batch_endpoints)
        if phase is not None:
            await phase.before(skip, handle, submit=mode != "collect")
            if online and mode != "collect":  # the cells the batches carry are not sent online
                skip = skip | set(batchstore.live_cells(store, run.run_id))
        reserved = batchstore.reserved_cost(store, run.run_id)  # worst case of the batches
        budget = Budget(config.max_cost, spent + reserved) if config.max_cost is not None else None
        for name, endpoint in config.endpoints.items():
            if name not in wanted:
                continue
            limits = endpoint.limits
            slots = limits.max_concurrency or config.concurrency  # calls in flight at most
            endpoints[name] = Endpoint(
                open_provider(endpoint),
                EndpointLimiter(rpm=limits.rpm, tpm=limits.tpm, max_concurrency=slots),
                pricing=endpoint.pricing,
                workers=slots,
            )
        scheduler = Scheduler(
            io,
            run.run_id,
            endpoints,
            concurrency=config.concurrency,
            retry=config.retry,
            progress=progress,
            grace_s=config.grace_s,
            budget=budget,
        )
        summary = Summary()
        judged = None
        racing = graded and mode != "collect" and config.race is not None
        if racing:  # scored round by round (see race.walk)
            progress.start(run.total, len(skip), spent)
            summary, judged = await _race(
                store, config, run, skip, io, endpoints, budget, handle, progress, redo
            )
            progress.close()
        elif graded and online and mode != "collect":
            handle.scheduler = scheduler
            if handle.stops:
                scheduler.stop()
            progress.start(run.total, len(skip), spent)
            streams = {name: expand(config, name, skip) for name in online}
            summary = await scheduler.execute(streams)
            progress.close()
        if phase is not None and (mode != "new" or config.wait):  # new batches: nothing to ask
            await phase.after(handle, wait=config.wait)
            summary.interrupted = summary.interrupted or phase.summary.interrupted
            if budget is not None:  # the judges' budget knows what the batches cost as collected
                budget.charge(await io.call(_committed_spend, run.run_id))
        if racing or not config.experiment.scores:
            pass
        elif handle.stops or summary.interrupted:
            summary.interrupted = True  # stopped before scoring: a resume scores
        else:
            judged = await _judge_and_score(store, config, run, io, endpoints, budget, handle,
                                            redo)  # fmt: skip
        return summary, judged, phase.summary if phase is not None else None
    finally:
        progress.close()
        if phase is not None:
            await phase.aclose()
        io.close()
        for opened in endpoints.values():
            with contextlib.suppress(Exception):
                await opened.provider.aclose()


async def _race(
    store: Store,
    config: RunConfig,
    run: RunInfo,
    skip: set[int],
    io: StoreIO,
    endpoints: dict[str, Endpoint],
    budget: Budget | None,
    handle: RunHandle,
    progress: Progress,
    redo: Redo,
) -> tuple[Summary, Summary | None]:
    """The grid walked as a race (:mod:`promptgrid.race.walk`): each round's cells through a
    scheduler over the same endpoints, store, progress and budget, then the judges and the
    scores; what the graded calls and the judges did, over every round."""
    from .race.walk import walk

    graded, judged = Summary(), Summary()
    judging = False
    worker = _scoring_worker(config)  # one for every round: a process started once

    async def send(cells: frozenset[int]) -> str | None:
        scheduler = Scheduler(
            io, run.run_id, endpoints, concurrency=config.concurrency, retry=config.retry,
            progress=progress, grace_s=config.grace_s, budget=budget,
        )  # fmt: skip
        handle.scheduler = scheduler
        if handle.stops:
            scheduler.stop()
        endpoints_of_grid = set(config.routes.values())
        part = await scheduler.execute(
            {name: expand_only(config, name, cells) for name in endpoints_of_grid}
        )
        _add(graded, part)
        return _why_stopped(part, handle)

    async def score(again: str) -> str | None:
        nonlocal judging
        part = await _judge_and_score(store, config, run, io, endpoints, budget, handle,
                                      "errors" if again == "errors" else "missing",
                                      worker)  # fmt: skip
        if part is not None:
            judging = True
            _add(judged, part)
        return _why_stopped(part, handle)

    try:
        await walk(io, run.run_id, config.experiment, skip, send, score, redo)
    finally:
        await worker.aclose()
    return graded, judged if judging else None


def _why_stopped(part: Summary | None, handle: RunHandle) -> str | None:
    """Why a phase stopped before its end: ``budget``, ``stopped`` (a signal, auth, quota), or
    None (it did not)."""
    if isinstance(part.stopped_by if part else None, BudgetExceeded):
        return "budget"
    if handle.stops or (part is not None and (part.stopped_by or part.interrupted)):
        return "stopped"
    return None


def _add(total: Summary, part: Summary) -> None:
    """Count ``part`` (one phase's summary) into ``total``."""
    total.ok += part.ok
    total.errors += part.errors
    total.cached += part.cached
    total.spent += part.spent
    total.stopped_by = total.stopped_by or part.stopped_by
    total.interrupted = total.interrupted or part.interrupted
    for kind, n in part.error_types.items():
        total.error_types[kind] = total.error_types.get(kind, 0) + n
    total.unbelievable_usage += part.unbelievable_usage


async def _judge_and_score(
    store: Store,
    config: RunConfig,
    run: RunInfo,
    io: StoreIO,
    endpoints: dict[str, Endpoint],
    budget: Budget | None,
    handle: RunHandle,
    redo: Redo,
    worker: ScoringWorker | None = None,
) -> Summary | None:
    """The judges' calls (a second scheduler over the same endpoints, store and budget), then
    every score, chunk by chunk, until done or stopped (in ``worker``, else a worker of its
    own)."""
    from .scoring.apply import JudgeRoute, judge_cells  # only runs with scores

    scores = config.experiment.scores
    routes = {name: JudgeRoute(endpoint, config.endpoints[endpoint].endpoint_id)
              for name, endpoint in config.judges.items()}  # fmt: skip
    judged = None
    if routes:
        progress = make_progress(f"{run.experiment} judges", config.progress)
        scheduler = Scheduler(
            io, run.run_id, endpoints, concurrency=config.concurrency, retry=config.retry,
            progress=progress, grace_s=config.grace_s, budget=budget,
        )  # fmt: skip
        handle.scheduler = scheduler
        if handle.stops:
            scheduler.stop()
        streams = {
            endpoint: judge_cells(
                store,
                run.run_id,
                [s for s in scores if config.judges.get(s.name) == endpoint],
                routes,
                redo,
            )
            for endpoint in set(config.judges.values())
        }
        try:
            progress.start(store.counts(run.run_id).get("ok", 0) * len(routes))
            judged = await scheduler.execute(streams)
        finally:
            progress.close()
        if judged.interrupted or handle.stops:
            judged.interrupted = True
            return judged
    if not await _score(io, config, run, routes, handle, redo, worker):
        judged = judged or Summary()  # stopped before every row was scored: a resume scores
        judged.interrupted = True  # the rest
    return judged


def _committed_spend(store: Store, run_id: str) -> float:
    """USD the run has paid for, plus the worst case of its batches not yet collected."""
    return store.spend(run_id) + batchstore.reserved_cost(store, run_id)


def _warn_unbelievable(*summaries: Summary | BatchSummary | None) -> None:
    """One warning for the session's paid answers whose usage was not believed."""
    count = sum(s.unbelievable_usage for s in summaries if s is not None)
    if count:
        warnings.warn(
            f"{count:,} answer{'s' if count != 1 else ''} had no believable usage (missing, "
            "not a whole number, negative, or more than the request allows): recorded as "
            "unknown (empty token counts) and charged at the request's worst case",
            PromptgridWarning,
            stacklevel=2,
        )


async def _score(
    io: StoreIO,
    config: RunConfig,
    run: RunInfo,
    routes: dict[str, JudgeRoute],
    handle: RunHandle,
    redo: Redo,
    worker: ScoringWorker | None = None,
) -> bool:
    """Every score of every answered row, chunk by chunk: read and written on the store's
    thread, computed in the scoring worker (killed by a stop; ``worker``, when given, is
    kept open for the caller's next call); whether all were done."""
    from .scoring.apply import read_chunk, write_chunk

    scores = config.experiment.scores
    own = worker is None
    worker = worker or _scoring_worker(config)
    handle.scheduler = worker
    try:
        after = -1
        while not handle.stops:
            chunk = await io.call(read_chunk, run.run_id, scores, routes, after, redo)
            if chunk is None:
                return True
            results = await _keeping_lease(io, worker.score(chunk.rows, chunk.jobs))
            await io.call(write_chunk, run.run_id, scores, chunk, results)
            after = chunk.last
        return False
    finally:
        if own:
            await worker.aclose()


def _scoring_worker(config: RunConfig) -> ScoringWorker:
    from .scoring.worker import ScoringWorker

    return ScoringWorker(config.experiment.scores, config.experiment.scores_dir)


async def _keeping_lease(io: StoreIO, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, with a heartbeat every ``HEARTBEAT_S`` meanwhile (slow scorers may
    take a chunk many minutes: the run stays ours)."""
    task = asyncio.ensure_future(work)
    try:
        while not (await asyncio.wait({task}, timeout=HEARTBEAT_S))[0]:
            await io.call(leases.heartbeat, io.owner)
        return task.result()
    finally:
        task.cancel()


def _disclose(config: RunConfig, handle: RunHandle) -> None:
    """Say, as the run starts, where its calls (and keys) go and what code it runs."""
    note = handle.note
    if note is not None:
        for line in config.disclosure():
            note(line)


def _create(store: Store, config: RunConfig) -> RunInfo:
    experiment = config.experiment
    run_id = new_run_id()
    record = config.record()
    if not config.use_cache:  # answers made after this one are this run's own: those count
        record["cache_floor"] = store.newest_response()
    total = experiment.total
    if config.shard is not None:  # its cells, and which grid they are a part of
        share = survey(cell_ids(replace(config, shard=None)), config.shard)
        record["shard"], total = share.record(), share.held
    store.create_run(
        run_id, experiment.name, experiment.source, public_spec(experiment.to_dict()),
        experiment.columns(), total, record,
    )  # fmt: skip
    info = store.run(run_id)
    assert info is not None
    return info


def _live_batches(store: Store, run_id: str) -> int:
    """Chunks of the run not yet collected."""
    return batchstore.batch_counts(store, [run_id]).get(run_id, (0, 0))[1]


def _continue_batches(
    store: Store, experiment: Experiment, selection: Selection, shard: Shard | None
) -> Selection:
    """A new batch-mode run of an experiment whose unfinished run (of the same shard) has
    batches: that run goes on instead (its answers are not in the cache until collected, so a
    new run would pay for them again)."""
    requests = experiment.requests_dict()
    unfinished = [
        r for r in store.runs(experiment.name)
        if r.status != "finished" and Experiment.requests_of(r.spec) == requests
        and recorded_shard(r.options) == shard
    ]  # fmt: skip
    counts = batchstore.batch_counts(store, [r.run_id for r in unfinished])
    for run in unfinished:  # newest first
        if counts.get(run.run_id, (0, 0))[1]:
            warnings.warn(
                f"continuing run {run.run_id}: it has batches not yet collected, and a new run "
                "would pay for their requests again (start one with --no-cache if you mean to)",
                PromptgridWarning,
                stacklevel=2,
            )
            return Selection("resume", run.run_id)
    return selection


def _find(
    store: Store,
    experiment: Experiment,
    selection: Selection,
    race: RaceOption,
    shard: Shard | None = None,
) -> tuple[RunInfo, Experiment]:
    """The run to resume or retry (the latest unfinished one: of ``shard``, if given), and
    the experiment as it runs it (with the race option the run recorded: ``race`` may only
    repeat it)."""
    if selection.run_id is None:
        unfinished = [
            r for r in store.runs(experiment.name)
            if r.status != "finished" and shard in (None, recorded_shard(r.options))
        ]  # fmt: skip
        if not unfinished:
            raise UsageError(
                f"no unfinished run of {experiment.name!r} in {store.path}; "
                "run without --resume (answers already paid for come from the cache)"
            )
        run = unfinished[0]
    else:
        run = resolve_run(store, selection.run_id)
    experiment = raced(experiment, same_option(race, run.options.get("race"), run.run_id))
    stored, now = Experiment.requests_of(run.spec), public_spec(experiment.requests_dict())
    if stored != now or run.experiment != experiment.name:
        if {**stored, "race": None} == {**now, "race": None}:
            raise UsageError(
                f"run {run.run_id} raced with race: {stored.get('race')}, and the experiment "
                f"now says {now.get('race')}: a race keeps its settings to the end; restore "
                "them, or start a new run (answers already stored come from the cache)"
            )
        raise UsageError(
            f"run {run.run_id} was made from a different version of this experiment; "
            "start a new run instead (unchanged cells come from the cache and cost nothing)"
        )
    return run, experiment
