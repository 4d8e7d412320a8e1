"""The Python API: ``run``, ``arun``, ``plan``, ``load``.

``arun`` is the one implementation; ``run`` is a thin wrapper that drives it with
``asyncio.run`` in a script, or — when an event loop is already running, as in a Jupyter kernel
— on a dedicated event-loop thread, so it works without nest_asyncio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import Problem, SpecError, UsageError
from .runner import RunHandle, RunOptions, RunOutcome, endpoints_of, execute, limits_of
from .spec import Experiment

if TYPE_CHECKING:
    import pandas as pd

    from .store import RunInfo

T = TypeVar("T")
ExperimentLike = Experiment | str | Path


def experiment_of(source: ExperimentLike) -> Experiment:
    """An Experiment from itself or from a YAML path."""
    return source if isinstance(source, Experiment) else Experiment.from_yaml(source)


async def arun_outcome(
    source: ExperimentLike, handle: RunHandle | None = None, **options: Any
) -> RunOutcome:
    """Run an experiment in the running loop; return what happened (run id, files, counts)."""
    opts = RunOptions.from_kwargs(**options)
    return await execute(experiment_of(source), opts, handle, frame=True)


async def arun(source: ExperimentLike, **options: Any) -> pd.DataFrame:
    """Run an experiment in the current event loop and return its result table.

    ``options``: ``results_dir``, ``provider``, ``base_url``, ``rpm``, ``tpm``, ``concurrency``,
    ``formats``, ``resume``, ``use_cache``, ``progress``.
    """
    outcome = await arun_outcome(source, **options)
    _raise_if_stopped(outcome)
    return outcome.frame


def _raise_if_stopped(outcome: RunOutcome) -> None:
    """An authentication or quota failure stopped the run: say so, and how to finish it."""
    error = outcome.summary.stopped_by
    if error is None:
        return
    pending = outcome.total - outcome.counts.get("ok", 0) - outcome.counts.get("error", 0)
    raise type(error)(
        f"{error.message} — run {outcome.run_id} stopped with {pending:,} cells pending; "
        "fix this, then finish it with run(..., resume=True)",
        http_status=error.http_status,
        request_id=error.request_id,
    )


def retry(run_id: str, **options: Any) -> pd.DataFrame:
    """Re-run the cells of a run that ended as error rows; return the run's whole table.

    The experiment is rebuilt from the run's stored copy; successful rows are kept, and every
    attempt stays in the store's history. Same options as ``run``.
    """
    experiment, info = stored_experiment(run_id, options.get("results_dir") or "results")
    for key in ("provider", "base_url"):
        options.setdefault(key, info.options.get(key))
    return run(experiment, retry_errors=info.run_id, **options)


def stored_experiment(run_id: str, results_dir: str | Path) -> tuple[Experiment, RunInfo]:
    """The experiment a run was made from, rebuilt from the store's copy, and the run."""
    from .results import resolve_run
    from .store import Store

    with Store.in_dir(results_dir) as store:
        info = resolve_run(store, run_id)
    base = Path(info.source).parent if info.source else Path.cwd()
    return Experiment.from_dict(info.spec, base_dir=base), info


def run(source: ExperimentLike, **options: Any) -> pd.DataFrame:
    """Run an experiment and return its result table, from a script, IPython or Jupyter.

    Same options as ``arun``. Ctrl-C (or the notebook's stop button) stops admitting calls, lets
    the calls in flight finish (up to ``grace_s``, 5 s) and raises ``KeyboardInterrupt`` naming
    the run; a second Ctrl-C cancels the calls in flight. Every completed row is in the store
    (run status ``interrupted``): ``load(run_id)`` shows them, ``run(..., resume=True)``
    finishes the run.
    """
    handle = RunHandle()
    outcome = run_sync(arun_outcome(source, handle, **options), handle)
    results_dir = options.get("results_dir") or "results"
    if handle.stops and outcome.status == "interrupted":
        raise KeyboardInterrupt(_interrupted(outcome, results_dir))
    _raise_if_stopped(outcome)
    return outcome.frame


def _interrupted(outcome: RunOutcome, results_dir: str | Path) -> str:
    done = outcome.counts.get("ok", 0) + outcome.counts.get("error", 0)
    where = "" if str(results_dir) == "results" else f", results_dir={str(results_dir)!r}"
    return (
        f"run {outcome.run_id} interrupted with {done:,} of {outcome.total:,} cells saved; "
        f"promptgrid.load({outcome.run_id!r}{where}) shows them, "
        "promptgrid.run(..., resume=True) finishes the run"
    )


def _cancelled(handle: RunHandle | None) -> str:
    scheduler = handle.scheduler if handle is not None else None
    run = f"run {scheduler.run_id}" if scheduler is not None else "the run"
    return f"{run} cancelled; its completed rows are saved, run(..., resume=True) finishes it"


def run_sync(coro: Coroutine[Any, Any, T], handle: RunHandle | None = None) -> T:
    """Drive a coroutine to completion from synchronous code, loop or no loop.

    With a ``handle``, Ctrl-C stops the run through it (first: stop admitting, second: cancel)
    instead of tearing the event loop down.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        try:
            return asyncio.run(_stop_on_sigint(coro, handle))
        except asyncio.CancelledError:
            if handle is not None and handle.stops:
                raise KeyboardInterrupt(_cancelled(handle)) from None
            raise
    if running is _LoopThread._loop:
        coro.close()
        raise UsageError("promptgrid.run() cannot wait inside its own loop: use await arun()")
    return _LoopThread.run(coro, handle)


async def _stop_on_sigint(coro: Coroutine[Any, Any, T], handle: RunHandle | None) -> T:
    loop = asyncio.get_running_loop()
    installed = False
    if handle is not None:
        try:
            loop.add_signal_handler(signal.SIGINT, handle.stop)
            installed = True
        except (NotImplementedError, RuntimeError, ValueError):  # Windows; not the main thread
            pass
    try:
        return await coro
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


class _LoopThread:
    """A daemon thread with its own event loop, for ``run()`` inside a running loop.

    It outlives a run, but nothing bound to a loop does: each run creates its clients and
    limiters in it and closes them before returning.
    """

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="promptgrid-loop", daemon=True
                )
                thread.start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T], handle: RunHandle | None) -> T:
        loop = cls.loop()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        while True:
            try:
                return future.result()
            except KeyboardInterrupt:
                # The stop button, delivered to this (the main) thread while it waits. The run
                # stops in its own loop; keep waiting, so its rows are saved before we return.
                if handle is None:
                    future.cancel()
                else:
                    loop.call_soon_threadsafe(handle.stop)
            except concurrent.futures.CancelledError:
                raise KeyboardInterrupt(_cancelled(handle)) from None


def load(
    run_id: str | None = None, results_dir: str | Path = "results", experiment: str | None = None
) -> pd.DataFrame:
    """The result table of a run (default: the newest run, of ``experiment`` if given)."""
    from .results import load_run, resolve_run
    from .store import Store

    with Store.in_dir(results_dir) as store:
        return load_run(store, resolve_run(store, run_id, experiment))


@dataclass
class Plan:
    """What a run would do: calls per axis and in total, what is cached, tokens, cost, time."""

    experiment: str
    axes: dict[str, int]
    total: int
    cached: int
    duplicates: int
    prompt_tokens: int
    max_output_tokens: int | None
    cost_usd: float | None
    seconds: float | None
    providers: list[str] = field(default_factory=list)

    @property
    def to_send(self) -> int:
        """Calls that would really be sent."""
        return self.total - self.cached - self.duplicates

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))  # IPython and Jupyter show the table, not the dataclass

    def __str__(self) -> str:
        lines = [f"experiment {self.experiment}"]
        lines += [f"  {name:<20} {n:>8,}" for name, n in self.axes.items()]
        lines.append(f"  {'total calls':<20} {self.total:>8,}")
        lines.append(f"  {'already cached':<20} {self.cached:>8,}")
        if self.duplicates:
            lines.append(f"  {'duplicates in grid':<20} {self.duplicates:>8,}")
        lines.append(f"  {'to send':<20} {self.to_send:>8,}")
        lines.append(f"  {'prompt tokens (est.)':<20} {self.prompt_tokens:>8,}")
        if self.max_output_tokens is not None:
            lines.append(f"  {'output tokens (max)':<20} {self.max_output_tokens:>8,}")
        if self.cost_usd is not None:
            lines.append(f"  {'cost (est., USD)':<20} {self.cost_usd:>8.4f}")
        if self.seconds is not None:
            lines.append(f"  {'time at the limits':<20} {self.seconds:>7.0f}s")
        lines.append(f"  providers: {', '.join(self.providers)}")
        return "\n".join(lines)


def plan(source: ExperimentLike, **options: Any) -> Plan:
    """Count the calls an experiment would make and what is already in the store."""
    from .grid import expand
    from .limits import estimate_prompt_tokens
    from .pricing import price_of
    from .runner import providers_used
    from .store import Store

    experiment = experiment_of(source)
    opts = RunOptions.from_kwargs(**options)
    endpoints = endpoints_of(experiment, opts)
    seen: set[str] = set()
    duplicates = prompt_tokens = 0
    output: int | None = 0
    cost: float | None = 0.0
    problems: list[Problem] = []
    tpm = {name: limits_of(experiment, name, opts).tpm for name in experiment.provider_names()}
    for cell in expand(experiment, endpoints, opts.provider):
        if cell.cell_id in seen:
            duplicates += 1
            continue
        seen.add(cell.cell_id)
        estimate = estimate_prompt_tokens(cell.request.messages)
        out = cell.request.max_output_tokens()
        prompt_tokens += estimate
        output = None if out is None or output is None else output + out
        limit = tpm.get(cell.provider)
        if limit and estimate + (out or 0) > limit and len(problems) < 5:
            problems.append(
                Problem(
                    f"cell {cell.index} needs about {estimate + (out or 0):,} tokens, more than "
                    f"the whole tpm limit of {limit:,} for {cell.provider!r}: it could never run",
                    experiment.source,
                    path="limits.tpm",
                    hint="raise tpm, lower max_tokens, or shorten the prompt",
                )
            )
        kind = experiment.provider_config(cell.provider).type
        price = price_of(cell.request.model) if kind != "echo" else (0.0, 0.0, 0.0)
        if cost is not None and price is not None:
            cost += (estimate * price[0] + (out or 0) * price[2]) / 1e6
        else:
            cost = None
    if problems:
        raise SpecError(problems)
    cached = 0
    if opts.use_cache and (Path(opts.results_dir) / "promptgrid.sqlite").exists():
        with Store.in_dir(opts.results_dir) as store:
            cached = len(store.cached_among(seen))
    to_send = len(seen) - cached
    # Time at the declared limits of the target endpoint (None when nothing bounds it).
    limits = limits_of(experiment, opts.provider or experiment.spec.provider, opts)
    share = to_send / max(len(seen), 1)
    bounds = [to_send / limits.rpm * 60] if limits.rpm else []
    if limits.tpm:
        bounds.append((prompt_tokens + (output or 0)) * share / limits.tpm * 60)
    seconds = max(bounds) if bounds else None
    return Plan(
        experiment.name, experiment.axes, experiment.total, cached, duplicates, prompt_tokens,
        output, None if cost is None else cost * share, seconds,
        providers_used(experiment, opts),
    )  # fmt: skip
