"""One run, end to end: experiment -> store -> scheduler -> files.

Everything that belongs to an event loop (providers, their HTTP clients, limiters) is created
here, inside the loop that runs the experiment, and closed before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import AuthenticationFailed, UsageError
from .grid import Cell, expand
from .limits import EndpointLimiter
from .progress import make_progress
from .providers import endpoint_id, open_provider
from .results import DEFAULT_FORMATS, export, parse_formats, to_dataframe
from .scheduler import Endpoint, Scheduler, Summary
from .spec import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S, Experiment, Limits
from .store import RunInfo, Store


@dataclass(frozen=True)
class RunOptions:
    """Everything a run can be told besides the experiment (CLI flags, ``run()`` keywords)."""

    results_dir: Path = Path("results")
    provider: str | None = None  # send every cell to this provider
    base_url: str | None = None  # for the default (or --provider) endpoint
    rpm: float | None = None
    tpm: int | None = None
    concurrency: int | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    resume: str | bool = False  # True: the latest unfinished run of this experiment
    retry_errors: str | None = None  # a run id: re-run only its error rows
    use_cache: bool = True
    progress: bool | None = None  # None: when output is a terminal or a notebook
    grace_s: float = 5.0

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> RunOptions:
        """Build from ``run()`` keywords, with a clear message for an unknown one."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise UsageError(f"unknown option(s) {unknown}; known: {sorted(known)}")
        if kwargs.get("results_dir") is not None:
            kwargs["results_dir"] = Path(kwargs["results_dir"])
        if "formats" in kwargs:
            kwargs["formats"] = parse_formats(kwargs["formats"])
        return cls(**{k: v for k, v in kwargs.items() if v is not None})


@dataclass
class RunOutcome:
    """What a run did and where its files are."""

    run_id: str
    experiment: str
    total: int
    out_dir: Path
    files: list[Path]
    summary: Summary
    counts: dict[str, int] = field(default_factory=dict)
    status: str = "finished"
    frame: Any = None  # the result table as a DataFrame, when execute(..., frame=True)

    @property
    def exit_code(self) -> int:
        """0 all ok, 3 some error rows, 130 interrupted, 1 stopped by auth/quota."""
        if self.status == "interrupted":
            return 130
        if self.status == "stopped":
            return 1
        return 3 if self.counts.get("error") else 0


class RunHandle:
    """Lets another part of the program (a signal handler, a notebook thread) stop a run."""

    def __init__(self, on_stop: Callable[[int], None] | None = None) -> None:
        self.scheduler: Scheduler | None = None
        self.task: asyncio.Task[Any] | None = None
        self.stops = 0
        self.on_stop = on_stop  # told the number of the stop (1, 2, ...), e.g. to print a note

    def stop(self) -> None:
        """First call: stop admitting calls, let those in flight finish. Second: cancel now."""
        self.stops += 1
        if self.on_stop is not None:
            self.on_stop(self.stops)
        if self.stops == 1 and self.scheduler is not None:
            self.scheduler.stop()
        elif self.task is not None:
            self.task.cancel()


def new_run_id() -> str:
    """A run id that sorts by time: ``20261124-105530.123-4f3a`` (UTC)."""
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}.{now.microsecond // 1000:03d}-{secrets.token_hex(2)}"


def endpoints_of(experiment: Experiment, options: RunOptions) -> dict[str, str]:
    """Provider name -> endpoint id, with the --base-url override applied to its target."""
    target = options.provider or experiment.spec.provider
    return {
        name: endpoint_id(
            experiment.provider_config(name), options.base_url if name == target else None
        )
        for name in experiment.provider_names()
    }


def limits_of(experiment: Experiment, name: str, options: RunOptions) -> Limits:
    """One provider's limits with the CLI/keyword overrides applied to the target provider."""
    limits = experiment.limits_for(name)
    if name == (options.provider or experiment.spec.provider):
        overrides = {"rpm": options.rpm, "tpm": options.tpm, "max_concurrency": options.concurrency}
        limits = limits.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    return limits


def providers_used(experiment: Experiment, options: RunOptions) -> list[str]:
    """The providers the grid's cells go to."""
    models = experiment.param_axes["model"]
    return sorted({experiment.provider_for(str(m), options.provider) for m in models})


async def execute(
    experiment: Experiment,
    options: RunOptions,
    handle: RunHandle | None = None,
    *,
    frame: bool = False,
) -> RunOutcome:
    """Run (or resume) an experiment in the running event loop and export its files.

    With ``frame``, the outcome also carries the run's table as a DataFrame."""
    handle = handle or RunHandle()
    handle.task = asyncio.current_task()
    if options.provider and options.provider not in experiment.provider_names():
        raise UsageError(
            f"unknown provider {options.provider!r}; use one of {experiment.provider_names()}"
        )
    endpoints = endpoints_of(experiment, options)
    opened: dict[str, Endpoint] = {}
    try:
        target = options.provider or experiment.spec.provider
        for name in providers_used(experiment, options):
            config = experiment.provider_config(name)
            limits = limits_of(experiment, name, options)
            try:
                provider = open_provider(
                    config,
                    timeout_s=limits.timeout_s or DEFAULT_TIMEOUT_S,
                    base_url=options.base_url if name == target else None,
                )
            except AuthenticationFailed as exc:  # no key: bad input, and nothing is written
                raise UsageError(str(exc)) from None
            limiter = EndpointLimiter(
                rpm=limits.rpm, tpm=limits.tpm, max_concurrency=limits.max_concurrency
            )
            opened[name] = Endpoint(provider, limiter, config.type, limits.max_concurrency)
        with Store.in_dir(options.results_dir) as store:
            run, skip = _start_run(store, experiment, options, endpoints)
            summary = await _schedule(store, experiment, options, run, skip, opened, handle)
            return _finish(store, run, summary, options, frame)
    finally:
        for endpoint in opened.values():
            with contextlib.suppress(Exception):
                await endpoint.provider.aclose()


def _finish(
    store: Store, run: RunInfo, summary: Summary, options: RunOptions, frame: bool
) -> RunOutcome:
    """Record how the run ended and export its files (and the DataFrame, with ``frame``)."""
    counts = store.counts(run.run_id)
    done = counts.get("ok", 0) + counts.get("error", 0)
    status = (
        "stopped" if summary.stopped_by
        else "interrupted" if summary.interrupted or done < run.total
        else "finished"
    )  # fmt: skip
    store.set_status(run.run_id, status)
    out_dir = options.results_dir / run.experiment / run.run_id
    tables: list[Any] | None = [] if frame else None
    files = export(store, run, out_dir, options.formats, tables)
    table = to_dataframe(iter(tables), run) if tables is not None else None
    return RunOutcome(
        run.run_id, run.experiment, run.total, out_dir, files, summary, counts, status, table
    )


async def _schedule(
    store: Store,
    experiment: Experiment,
    options: RunOptions,
    run: RunInfo,
    skip: set[int],
    endpoints: dict[str, Endpoint],
    handle: RunHandle,
) -> Summary:
    progress = make_progress(experiment.name, options.progress)
    scheduler = Scheduler(
        store,
        run.run_id,
        endpoints,
        concurrency=options.concurrency or experiment.spec.limits.max_concurrency
        or DEFAULT_CONCURRENCY,
        retry=experiment.spec.retry,
        use_cache=options.use_cache,
        progress=progress,
        grace_s=options.grace_s,
    )  # fmt: skip
    handle.scheduler = scheduler
    if handle.stops:
        scheduler.stop()
    streams = {name: _cells(experiment, options, skip, name) for name in endpoints}
    progress.start(run.total, len(skip))
    try:
        return await scheduler.execute(streams)
    except asyncio.CancelledError:
        scheduler.summary.interrupted = True
        store.set_status(run.run_id, "interrupted")
        raise
    except Exception:  # e.g. a template that fails to render for one row: say so in the store
        store.set_status(run.run_id, "failed")
        raise
    finally:
        progress.close()


def _cells(
    experiment: Experiment, options: RunOptions, skip: set[int], provider: str
) -> Iterator[Cell]:
    """The cells one provider still has to answer, in grid order (a lazy walk of the grid)."""
    for cell in expand(experiment, endpoints_of(experiment, options), options.provider):
        if cell.provider == provider and cell.index not in skip:
            yield cell


def _start_run(
    store: Store, experiment: Experiment, options: RunOptions, endpoints: dict[str, str]
) -> tuple[RunInfo, set[int]]:
    """Create a new run, or find the run to resume / retry and the cells to skip."""
    spec = experiment.to_dict()
    if options.retry_errors or options.resume:
        wanted = options.retry_errors or options.resume
        if wanted is True:
            unfinished = [r for r in store.runs(experiment.name) if r.status != "finished"]
            if not unfinished:
                raise UsageError(
                    f"no unfinished run of {experiment.name!r} in {store.path}; "
                    "run without --resume (answers already paid for come from the cache)"
                )
            run = unfinished[0]
        else:
            from .results import resolve_run

            run = resolve_run(store, str(wanted))
        if run.spec != spec or run.experiment != experiment.name:
            raise UsageError(
                f"run {run.run_id} was made from a different version of this experiment; "
                "start a new run instead (unchanged cells come from the cache and cost nothing)"
            )
        if options.retry_errors:
            skip = store.indexes(run.run_id, status="ok")
        else:
            skip = store.indexes(run.run_id)
        store.set_status(run.run_id, "running")
        return run, skip
    run_id = new_run_id()
    recorded = {"provider": options.provider, "base_url": options.base_url,
                "endpoints": endpoints}  # fmt: skip
    store.create_run(
        run_id, experiment.name, experiment.source, spec, experiment.columns(), experiment.total,
        recorded,
    )  # fmt: skip
    info = store.run(run_id)
    assert info is not None
    return info, set()
