"""The Python API: ``run``, ``arun``, ``plan``, ``retry``, ``load``, ``report``, ``score``,
``merge`` and ``Experiment``.

Every function spells out its options (keyword-only), so ``help()`` and an IDE show them and a
misspelt one is Python's own ``TypeError``. ``arun`` is the one implementation; ``run`` drives it
from synchronous code (see ``_sync``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import operations, spec
from ._sync import RunHandle
from .errors import BudgetExceeded, ProviderError, UsageError
from .exports import parse_formats
from .operations import Job, ScoresSource
from .runner import RunOutcome, execute
from .shards import ShardSpec

if TYPE_CHECKING:
    import pandas as pd

    from .planning import Plan
    from .race.replay import Replay
    from .race.standings import Standings
    from .shards import Merged
    from .store import RunInfo

__all__ = [
    "Experiment", "ExperimentSource", "arun", "batch_status", "cancel_batches", "collect",
    "load", "merge", "plan", "replay", "report", "retry", "run", "score", "standings",
]  # fmt: skip


class Experiment(spec.Experiment):
    """A validated experiment: prompts × cases × vars × params × repeats.

    Build one from a file with ``Experiment.from_yaml(path)``, from a mapping shaped like the
    file with ``Experiment.from_dict(data)``, or in code with the same fields, e.g.
    ``Experiment(prompts={"p": "Name a {{ animal }}"}, vars={"animal": ["cat"]},
    params={"model": "gpt-4o-mini"}, provider="echo")``. Invalid input raises ``SpecError``
    naming the key and what to do. ``plan``, ``run`` and ``arun`` take the options of the
    functions of the same name.
    """

    def plan(
        self,
        *,
        results_dir: str | Path = "results",
        provider: str | None = None,
        base_url: str | None = None,
        rpm: float | None = None,
        tpm: int | None = None,
        concurrency: int | None = None,
        use_cache: bool | None = None,
        max_cost: float | None = None,
        batch: bool | None = None,
        race: Mapping[str, Any] | bool | None = None,
        shard: ShardSpec | None = None,
    ) -> Plan:
        """Calls per axis, in total and already cached, tokens, cost, time (``promptgrid.plan``)."""
        return plan(
            self, results_dir=results_dir, provider=provider, base_url=base_url, rpm=rpm,
            tpm=tpm, concurrency=concurrency, use_cache=use_cache, max_cost=max_cost,
            batch=batch, race=race, shard=shard,
        )  # fmt: skip

    def run(
        self,
        *,
        results_dir: str | Path = "results",
        provider: str | None = None,
        base_url: str | None = None,
        rpm: float | None = None,
        tpm: int | None = None,
        concurrency: int | None = None,
        formats: str | Sequence[str] | None = None,
        resume: bool = False,
        run_id: str | None = None,
        use_cache: bool | None = None,
        max_cost: float | None = None,
        progress: bool | None = None,
        grace_s: float = 5.0,
        batch: bool | None = None,
        wait: bool = False,
        race: Mapping[str, Any] | bool | None = None,
        shard: ShardSpec | None = None,
    ) -> pd.DataFrame:
        """Run the grid and return the DataFrame (``promptgrid.run``)."""
        return run(
            self, results_dir=results_dir, provider=provider, base_url=base_url, rpm=rpm,
            tpm=tpm, concurrency=concurrency, formats=formats, resume=resume, run_id=run_id,
            use_cache=use_cache, max_cost=max_cost, progress=progress, grace_s=grace_s,
            batch=batch, wait=wait, race=race, shard=shard,
        )  # fmt: skip

    async def arun(
        self,
        *,
        results_dir: str | Path = "results",
        provider: str | None = None,
        base_url: str | None = None,
        rpm: float | None = None,
        tpm: int | None = None,
        concurrency: int | None = None,
        formats: str | Sequence[str] | None = None,
        resume: bool = False,
        run_id: str | None = None,
        use_cache: bool | None = None,
        max_cost: float | None = None,
        progress: bool | None = None,
        grace_s: float = 5.0,
        batch: bool | None = None,
        wait: bool = False,
        race: Mapping[str, Any] | bool | None = None,
        shard: ShardSpec | None = None,
    ) -> pd.DataFrame:
        """Run the grid in the current event loop (``promptgrid.arun``)."""
        return await arun(
            self, results_dir=results_dir, provider=provider, base_url=base_url, rpm=rpm,
            tpm=tpm, concurrency=concurrency, formats=formats, resume=resume, run_id=run_id,
            use_cache=use_cache, max_cost=max_cost, progress=progress, grace_s=grace_s,
            batch=batch, wait=wait, race=race, shard=shard,
        )  # fmt: skip


#: What ``run``, ``arun`` and ``plan`` take: an Experiment, a YAML path, or a mapping shaped
#: like the file.
ExperimentSource = spec.Experiment | str | Path | Mapping[str, Any]


def experiment_of(source: ExperimentSource) -> spec.Experiment:
    """An Experiment from itself, a YAML path, or a mapping."""
    if isinstance(source, spec.Experiment):
        return source
    if isinstance(source, Mapping):
        return Experiment.from_dict(source)
    return Experiment.from_yaml(source)


async def arun(
    source: ExperimentSource,
    *,
    results_dir: str | Path = "results",
    provider: str | None = None,
    base_url: str | None = None,
    rpm: float | None = None,
    tpm: int | None = None,
    concurrency: int | None = None,
    formats: str | Sequence[str] | None = None,
    resume: bool = False,
    run_id: str | None = None,
    use_cache: bool | None = None,
    max_cost: float | None = None,
    progress: bool | None = None,
    grace_s: float = 5.0,
    batch: bool | None = None,
    wait: bool = False,
    race: Mapping[str, Any] | bool | None = None,
    shard: ShardSpec | None = None,
) -> pd.DataFrame:
    """Run an experiment in the current event loop and return its result table.

    Same options as :func:`run`. In a notebook, ``await arun(...)`` runs in the kernel's loop;
    the stop button cancels the calls in flight (every answer already back is saved).
    """
    job = operations.run_job(
        experiment_of(source), resume=resume, run_id=run_id, results_dir=results_dir,
        provider=provider, base_url=base_url, rpm=rpm, tpm=tpm, concurrency=concurrency,
        formats=formats, use_cache=use_cache, max_cost=max_cost, progress=progress,
        grace_s=grace_s, batch=batch, wait=wait, race=race, shard=shard,
    )  # fmt: skip
    handle = _handle(progress)
    outcome = await execute(job.experiment, job.options, job.selection, handle, frame=True)
    return _frame(outcome)


def run(
    source: ExperimentSource,
    *,
    results_dir: str | Path = "results",
    provider: str | None = None,
    base_url: str | None = None,
    rpm: float | None = None,
    tpm: int | None = None,
    concurrency: int | None = None,
    formats: str | Sequence[str] | None = None,
    resume: bool = False,
    run_id: str | None = None,
    use_cache: bool | None = None,
    max_cost: float | None = None,
    progress: bool | None = None,
    grace_s: float = 5.0,
    batch: bool | None = None,
    wait: bool = False,
    race: Mapping[str, Any] | bool | None = None,
    shard: ShardSpec | None = None,
) -> pd.DataFrame:
    """Run an experiment and return its result table, from a script, IPython or Jupyter.

    Args:
        source: an :class:`Experiment`, a YAML file's path, or a mapping shaped like the file.
        results_dir: where the store (``promptgrid.sqlite``) and the files go.
        provider: send every cell to this provider (``"echo"`` runs offline).
        base_url: the OpenAI-compatible URL of that provider (default: the file's, else
            ``OPENAI_BASE_URL``, else OpenAI's).
        rpm: override the requests-per-minute limit of that provider.
        tpm: override its tokens-per-minute limit.
        concurrency: override its limit on calls in flight.
        formats: files to write, e.g. ``"parquet,csv"`` (any of parquet, csv, xlsx, jsonl).
        resume: continue the latest unfinished run of this experiment instead of a new one.
        run_id: continue this run (implies ``resume``).
        use_cache: ``False`` pays for fresh answers instead of reusing stored ones (identical
            cells of this run are still sent once).
        max_cost: a hard budget in USD (else the file's ``budget:``): no call is sent whose
            worst case could take the run's spend past it; the run then stops (resumable).
        progress: show a live progress line (default: in a terminal or a notebook).
        grace_s: after a stop, how long calls in flight may take to finish.
        batch: ``True`` sends the calls through the providers' Batch APIs (half the price,
            results within 24 h; providers without one answer online), ``False`` every call
            online; ``None``: as the file says (``batch:``). The same ``run(..., batch=True)``
            again continues a run whose batches are not collected yet.
        wait: in batch mode, poll until every batch is in and collected (seconds to a minute
            apart); else return at once with what is in (the run is ``submitted``:
            :func:`collect` gets the rest).
        race: with a ``race:`` (in the file or here), the variants are raced: rounds of cases,
            and a variant confidently worse than another stops being run (see the README's
            "Racing"). ``None`` races as the file says, ``False`` runs the full grid, a mapping
            gives settings over the file's (``{"confidence": 0.99}``; ``score``, ``factor``,
            ``confidence``, ``min_cases``, ``keep``, ``seed``, ``bounds``). A resumed run races
            as it started. :func:`standings` reads the race's result.
        shard: run only one of N disjoint parts of the grid, on one of N machines: ``"2/8"``
            or ``(2, 8)`` (counting from 0), ``"auto"`` (from the job runner: a Slurm array, a
            Kubernetes Indexed Job with ``PROMPTGRID_SHARD_COUNT``), ``"auto/8"`` (the index
            from the job runner). The run is a normal run of its cells (its own results
            folder, resume, retry, budget); :func:`merge` joins the shards into one run.

    A resumed run keeps the settings it was started with (provider, base URL, limits, formats);
    giving another provider or base URL is an error, new limits apply to the rest of the run.

    Ctrl-C (or the notebook's stop button, or SIGTERM) stops admitting calls, lets the calls in
    flight finish (up to ``grace_s``) and raises ``KeyboardInterrupt`` naming the run; a second
    one cancels the calls in flight. Every completed row is in the store (run status
    ``interrupted``): ``load(run_id)`` shows them, ``run(..., resume=True)`` finishes the run.
    An authentication or quota failure raises its error, naming the run to resume.
    """
    return _blocking(operations.run_job(
        experiment_of(source), resume=resume, run_id=run_id, results_dir=results_dir,
        provider=provider, base_url=base_url, rpm=rpm, tpm=tpm, concurrency=concurrency,
        formats=formats, use_cache=use_cache, max_cost=max_cost, progress=progress,
        grace_s=grace_s, batch=batch, wait=wait, race=race, shard=shard,
    ))  # fmt: skip


def retry(
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
) -> pd.DataFrame:
    """Re-run the cells of a run that ended as error rows; return the run's whole table.

    The experiment is rebuilt from the run's stored copy and sent where the run went (its
    recorded provider and base URL); successful rows are kept, and every attempt stays in the
    store's history. ``rpm``, ``tpm``, ``concurrency``, ``formats`` and ``max_cost`` may be
    changed. ``batch=True`` sends them as new batches (``wait`` as for :func:`run`),
    ``False`` online; ``None``: as the file says.
    """
    return _blocking(operations.retry_job(
        run_id, results_dir=results_dir, rpm=rpm, tpm=tpm, concurrency=concurrency,
        formats=formats, max_cost=max_cost, progress=progress, grace_s=grace_s, batch=batch,
        wait=wait,
    ))  # fmt: skip


def collect(
    run_id: str,
    *,
    results_dir: str | Path = "results",
    wait: bool = False,
    formats: str | Sequence[str] | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Collect a batch-mode run: poll its batches, merge every ended one (completed, failed,
    expired, cancelled: their partial outputs too) into the store, and return the run's table.

    With ``wait``, poll (seconds to a minute apart) until every batch is in. Nothing new is
    sent. Requests a batch failed, or never ran, become error rows that :func:`retry` sends
    again. Example::

        df = promptgrid.collect("20261124-105530.123-4f3a", wait=True)
    """
    return _blocking(operations.collect_job(
        run_id, results_dir=results_dir, wait=wait, formats=formats, progress=progress
    ))  # fmt: skip


def batch_status(run_id: str | None = None, *, results_dir: str | Path = "results") -> pd.DataFrame:
    """Each batch of a run (default: the newest run that has batches), one row each: its
    chunk, endpoint, local state, the provider's ``status`` and request counts (asked of the
    provider now), sizes and file ids. Writes nothing."""
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame(
        [r.to_dict() for r in operations.batch_rows(run_id, results_dir=results_dir)]
    )
    return frame


def cancel_batches(run_id: str, *, results_dir: str | Path = "results") -> pd.DataFrame:
    """Cancel a run's batches: the provider stops them (what already ran is kept) and chunks
    not yet submitted are dropped. :func:`collect` then turns what ran into rows; the rest
    become ``batch_cancelled`` error rows that :func:`retry` sends again. Returns the batches
    as :func:`batch_status` does."""
    import pandas as pd

    rows = operations.cancel_rows(run_id, results_dir=results_dir)
    frame: pd.DataFrame = pd.DataFrame([r.to_dict() for r in rows])
    return frame


def _handle(progress: bool | None) -> RunHandle:
    """A run's handle; batch mode's progress lines go to stderr unless ``progress`` is False."""
    handle = RunHandle()
    if progress is not False:
        handle.note = _note
    return handle


def _note(text: str) -> None:
    import sys

    from .terminal import visible

    print(visible(text), file=sys.stderr, flush=True)


def _blocking(job: Job) -> pd.DataFrame:
    """Execute from synchronous code; a stop raises ``KeyboardInterrupt`` naming the run."""
    handle = _handle(job.options.progress)
    outcome = operations.execute(job, handle, frame=True)
    if handle.stops and outcome.status in ("interrupted", "submitted"):
        raise KeyboardInterrupt(_interrupted(outcome))
    return _frame(outcome)


def plan(
    source: ExperimentSource,
    *,
    results_dir: str | Path = "results",
    provider: str | None = None,
    base_url: str | None = None,
    rpm: float | None = None,
    tpm: int | None = None,
    concurrency: int | None = None,
    use_cache: bool | None = None,
    max_cost: float | None = None,
    batch: bool | None = None,
    race: Mapping[str, Any] | bool | None = None,
    shard: ShardSpec | None = None,
) -> Plan:
    """What a run would do: calls per axis and in total, already cached, tokens, cost, time.

    Nothing is sent and nothing is written. Options as for :func:`run`; with ``batch``, the
    calls of providers that have a Batch API are priced at batch prices. With a race
    (``race``, as for :func:`run`), the plan also gives the race's calls and cost: at least
    its first round's, at most the full grid's. With ``shard``, the figures are that
    shard's share.
    """
    from .planning import make_plan

    options = operations.run_options(
        results_dir=results_dir, provider=provider, base_url=base_url, rpm=rpm, tpm=tpm,
        concurrency=concurrency, use_cache=use_cache, max_cost=max_cost, batch=batch, race=race,
        shard=shard,
    )  # fmt: skip
    return make_plan(experiment_of(source), options)


def load(
    run_id: str | None = None,
    *,
    results_dir: str | Path = "results",
    experiment: str | None = None,
) -> pd.DataFrame:
    """The result table of a run (default: the newest run, of ``experiment`` if given); a run
    id may be given by a unique prefix."""
    from .store import Store
    from .table import load_run, resolve_run

    with Store.in_dir(results_dir, readonly=True) as store:
        return load_run(store, resolve_run(store, run_id, experiment))


def standings(
    run_id: str | None = None, *, results_dir: str | Path = "results"
) -> Standings | None:
    """The race of a raced run (default: the newest run), or None if it did not race: the
    winner, the ties, each elimination (round, blocks run, cases scored, against whom, that
    rival's lead and its anytime-valid interval) and the calls saved against the full grid,
    as the engine recorded them round by round.

    Example::

        race = promptgrid.standings(run_id)
        print(race)          # winner, calls saved, one row per variant
        race.winner, race.tied, race.calls, race.grid_calls
        race.table           # rank, status, mean, cases, calls, dropped_round, against, ...
    """
    from .race.standings import Standings
    from .store import Store
    from .store import races as racebook
    from .table import resolve_run

    with Store.in_dir(results_dir, readonly=True) as store:
        record = racebook.load(store, resolve_run(store, run_id).run_id)
    return None if record is None else Standings(record)


def merge(
    sources: Sequence[str | Path],
    *,
    output: str | Path = "results",
    experiment: str | None = None,
    formats: str | Sequence[str] | None = None,
) -> Merged:
    """Join the stores of a grid's shards (runs made with ``shard=``) into one run in
    ``output``, as if it had run on one machine, and write its files.

    Every cell once; the cache (every request and answer of every source) and every attempt
    kept; costs summed. A shard missing or unfinished is named in the result and the merged run
    is ``incomplete`` (merging again, once it is in, updates the same run). The same shard
    given twice counts once; shards of different experiments (or versions of one) are refused,
    and so is a shard still running. ``load``, ``report``, ``contrast``, exports and ``retry``
    then work on the merged run.

    Args:
        sources: the shards' results folders.
        output: the results folder to merge into (a new one, or one holding other runs).
        experiment: only the shards of this experiment, when the folders hold several.
        formats: the files to write (default: the shards' formats, else parquet and csv).

    Example::

        merged = promptgrid.merge(["results-0", "results-1", "results-2"], output="results")
        print(merged)    # the merged run, each shard, what is missing
        df = promptgrid.load(merged.run_id, results_dir="results")
    """
    from .exports import export
    from .runner import new_run_id
    from .shards import Merged
    from .store import Store
    from .store.merge import merge as merge_stores
    from .table import with_score_columns

    out = operations.results_folder(output)
    chosen = None if formats is None else parse_formats(formats)
    plan, info = merge_stores([Path(s) for s in sources], out, run_id=new_run_id(),
                              experiment=experiment)  # fmt: skip
    with Store.in_dir(out, readonly=True) as store:
        run = with_score_columns(store, info)
        written = chosen or parse_formats(info.options.get("formats"))
        files = export(store, run, out / info.experiment / info.run_id, written)
        counts, spent = store.counts(info.run_id), store.spend(info.run_id)
    return Merged(info.run_id, info.experiment, out, info.status, plan, counts, spent, files,
                  info.source)  # fmt: skip


def replay(
    run: str | pd.DataFrame | None = None,
    *,
    race: Mapping[str, Any] | None = None,
    results_dir: str | Path = "results",
) -> Replay:
    """Replay a stored full-grid run as a race, without a call: the variant the race would
    name, when it would have dropped each of the others (against whom, with the lead and its
    interval), and the calls it would have used against the full grid's.

    Args:
        run: a run id (or a unique prefix; default: the newest run), or its table.
        race: the race's settings, as in the file's ``race:`` (``score``, ``factor``,
            ``confidence``, ``min_cases``, ``keep``, ``seed``, ``bounds``), over the run's own
            ``race:`` if it has one.
        results_dir: where the run's store is.

    Example::

        result = promptgrid.replay(run_id, race={"score": "correct", "confidence": 0.95})
        print(result)        # winner, eliminations, calls used against the full grid
        result.table         # one row per variant, as a DataFrame
    """
    import pandas as pd

    from .race.replay import race_settings, replay_table
    from .spec.schema import ScoreSpec

    df = run if isinstance(run, pd.DataFrame) else load(run, results_dir=results_dir)
    ids = {str(r) for r in df["run_id"].unique()} if "run_id" in df.columns else set()
    infos = _stored_runs(ids, results_dir) if len(ids) == 1 else {}
    stored = next(iter(infos.values())).spec if infos else {}
    if df.empty:
        raise UsageError("the table is empty: nothing to replay")
    settings = race_settings(stored.get("race"), race)
    scores = {k: ScoreSpec.model_validate(v) for k, v in (stored.get("scores") or {}).items()}
    return replay_table(df, settings, scores)


def report(
    data: pd.DataFrame | Sequence[pd.DataFrame],
    path: str | Path,
    *,
    results_dir: str | Path = "results",
    title: str | None = None,
) -> Path:
    """Write the HTML report of a result table to ``path``; returns the path.

    ``data`` is a table from ``run``/``load`` (one run: the side-by-side grid), or several
    tables — or one table holding several runs — compared run against run: calls aligned by
    their inputs, a column per run, a "changed only" filter. The file is self-contained (data,
    script and styles inlined; nothing fetched when it is opened). Each run's settings and
    experiment come from the store in ``results_dir`` when it holds the run.

    Examples::

        promptgrid.report(df, "animals.html")
        promptgrid.report([promptgrid.load(run_a), promptgrid.load(run_b)], "a-vs-b.html")
    """
    import pandas as pd

    from .exports.report import write_report

    frames = [data] if isinstance(data, pd.DataFrame) else list(data)
    if not frames:
        from .errors import UsageError

        raise UsageError("report() needs a table (or several)")
    if len(frames) == 1 and "run_id" in frames[0].columns and frames[0]["run_id"].nunique() > 1:
        frames = [group for _, group in frames[0].groupby("run_id", sort=False)]
    ids = {str(r) for f in frames if "run_id" in f.columns for r in f["run_id"].unique()}
    return write_report(frames, Path(path), _stored_runs(ids, results_dir), title=title)


def _stored_runs(run_ids: set[str], results_dir: str | Path) -> dict[str, RunInfo]:
    """The runs of ``run_ids`` that the store in ``results_dir`` holds (none if no store),
    with their races."""
    from .store import STORE_NAME, Store, races

    if not (Path(results_dir) / STORE_NAME).is_file():
        return {}
    with Store.in_dir(results_dir, readonly=True) as store:
        found = {run_id: store.run(run_id) for run_id in run_ids}
        return {run_id: races.attach(store, info) for run_id, info in found.items() if info}


def score(
    source: str | pd.DataFrame,
    scores: ScoresSource | None = None,
    *,
    results_dir: str | Path = "results",
    max_cost: float | None = None,
    progress: bool | None = None,
    grace_s: float = 5.0,
) -> pd.DataFrame:
    """(Re)compute a run's scores from its stored answers and return its table with them.

    The graded model is never called. Judges are called only for verdicts the store does not
    hold (an unchanged judge on an unchanged answer is a cache hit, so scoring twice costs
    nothing the second time). The run's files are rewritten with the new score columns.

    Args:
        source: a run id (or a unique prefix), or a table from ``run``/``load`` (each of its
            runs is scored; the tables are concatenated).
        scores: new score definitions — a YAML file (with ``scores:``, or just the mapping) or
            a mapping shaped like the file's ``scores:``; they become the run's scores. Default:
            the run's own (recomputed: a ``python:`` scorer's code may have changed).
        results_dir: where the run's store is.
        max_cost: a hard budget for the judges' calls (else the run's).
        progress: as for :func:`run`.
        grace_s: as for :func:`run`.

    Example::

        df = promptgrid.score(run_id, {"correct": {"icontains": "{{ expected }}"}})
    """
    import pandas as pd

    if isinstance(source, str):
        run_ids = [source]
    else:
        if "run_id" not in source.columns:
            raise UsageError("the table has no run_id column: give a run id, or a table from "
                             "run() or load()")  # fmt: skip
        run_ids = [str(r) for r in dict.fromkeys(source["run_id"].tolist())]
    frames = []
    for run_id in run_ids:
        handle = RunHandle()
        outcome = operations.score_run(
            run_id, scores=scores, results_dir=results_dir, max_cost=max_cost,
            progress=progress, grace_s=grace_s, handle=handle, frame=True,
        )  # fmt: skip
        if handle.stops and outcome.status == "interrupted":
            raise KeyboardInterrupt(f"scoring of run {outcome.run_id} interrupted; its scores so "
                                    "far are saved, score() again finishes them")  # fmt: skip
        frames.append(_frame(outcome))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _frame(outcome: RunOutcome) -> pd.DataFrame:
    """The run's table, unless an authentication or quota failure stopped it. Its ``attrs``
    name the run and its status (a run whose batches are out has rows only for what is in)."""
    _raise_if_stopped(outcome)
    frame: pd.DataFrame = outcome.frame
    frame.attrs.update(run_id=outcome.run_id, status=outcome.status)
    return frame


def _raise_if_stopped(outcome: RunOutcome) -> None:
    """An authentication, quota or budget stop: say so, and how to finish the run."""
    error = outcome.summary.stopped_by
    if error is None:
        return
    if isinstance(error, BudgetExceeded):
        raise BudgetExceeded(
            f"{error} — run {outcome.run_id} stopped with {outcome.pending:,} cells pending; "
            "finish it with run(..., resume=True, max_cost=<a higher cap>)",
            cap=error.cap,
            spent=error.spent,
            next_worst=error.next_worst,
        )
    assert isinstance(error, ProviderError)
    raise type(error)(
        f"{error.message} — run {outcome.run_id} stopped with {outcome.pending:,} cells "
        "pending; fix this, then finish it with run(..., resume=True)",
        http_status=error.http_status,
        request_id=error.request_id,
    )


def _interrupted(outcome: RunOutcome) -> str:
    done = outcome.total - outcome.pending
    results_dir = outcome.config.results_dir
    where = "" if str(results_dir) == "results" else f", results_dir={str(results_dir)!r}"
    if outcome.status == "submitted":
        return (
            f"stopped waiting for run {outcome.run_id}: its batches go on at the provider; "
            f"promptgrid.collect({outcome.run_id!r}{where}) gathers them"
        )
    return (
        f"run {outcome.run_id} interrupted with {done:,} of {outcome.total:,} cells saved; "
        f"promptgrid.load({outcome.run_id!r}{where}) shows them, "
        f"promptgrid.run(..., resume=True{where}) finishes the run"
    )
