"""The ``promptgrid`` command: a thin layer over the library.

Each command parses its options, calls one library function and prints the result: a public
name (``promptgrid.api``, ``promptgrid.analysis``, ``promptgrid.errors``) or, for what the CLI
alone needs (a run's outcome to print and exit with, the runs' list, the batch commands),
:mod:`promptgrid.operations`; nothing else of the library but ``terminal``, for printing.
Errors become one message and an exit code in one place (``main``); the codes are
:class:`promptgrid.errors.ExitCode`. Only click is imported at start-up; the library is imported
inside the commands.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .terminal import visible

if TYPE_CHECKING:
    from .operations import Job, Repeats, RunOutcome

F = TypeVar("F", bound=Callable[..., Any])


def results_dir_option(f: F) -> F:
    """``--results-dir``: where the store and the files live."""
    return click.option(
        "--results-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("results"),
        show_default=True,
        help="Where the store (promptgrid.sqlite) and exported files live.",
    )(f)


def format_option(default: str | None) -> Callable[[F], F]:
    """``--format``: the files to write."""
    return click.option(
        "--format",
        "formats",
        default=default,
        show_default=default is not None,
        help="Files to write: any of parquet,csv,xlsx,jsonl,html (html: report.html)"
        + ("." if default else " (default: the run's, else parquet,csv)."),
    )


def limit_options(f: F) -> F:
    """``--rpm``, ``--tpm``, ``--concurrency``: limit overrides."""
    f = click.option("--concurrency", type=click.IntRange(min=1), help="Calls in flight at most.")(
        f
    )
    f = click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute.")(f)
    rpm = click.FloatRange(min=0, min_open=True)
    return click.option("--rpm", type=rpm, help="Requests per minute.")(f)


def endpoint_options(f: F) -> F:
    """``--provider``, ``--base-url``: where calls go."""
    f = click.option("--base-url", help="OpenAI-compatible endpoint URL for that provider.")(f)
    return click.option(
        "--provider", help="Send every call to this provider: echo (offline), openai, ..."
    )(f)


def max_cost_option(f: F) -> F:
    """``--max-cost USD``: a hard budget."""
    return click.option(
        "--max-cost",
        type=click.FloatRange(min=0, min_open=True),
        metavar="USD",
        help="Never spend more than this on the run (else the file's budget:).",
    )(f)


def batch_options(f: F) -> F:
    """``--batch/--no-batch``, ``--wait``: batch mode."""
    f = click.option(
        "--wait", is_flag=True, help="Batch mode: poll until every batch is in, and collect it."
    )(f)
    return click.option(
        "--batch/--no-batch", default=None,
        help="Through the providers' Batch APIs: half the price, results within 24 h "
        "(default: the file's batch:).",
    )(f)  # fmt: skip


def race_options(f: F) -> F:
    """``--race-score``, ``--race-factor``, ... over the file's ``race:``; ``--no-race``."""
    f = click.option("--no-race", is_flag=True,
                     help="Run the full grid, even with a race: in the file.")(f)  # fmt: skip
    f = click.option("--race-bounds", metavar="LOW,HIGH",
                     help="Race: a python scorer's range (default 0,1).")(f)  # fmt: skip
    f = click.option("--race-seed", type=click.IntRange(min=0),
                     help="Race: of the order the cases are run in.")(f)  # fmt: skip
    f = click.option("--race-keep", type=click.IntRange(min=1),
                     help="Race: stop when this many variants survive.")(f)  # fmt: skip
    f = click.option("--race-min-cases", type=click.IntRange(min=1),
                     help="Race: cases every variant runs before any is dropped.")(f)  # fmt: skip
    confidence = click.FloatRange(0, 1, min_open=True, max_open=True)
    f = click.option("--race-confidence", type=confidence,
                     help="Race: the chance that the best is never dropped.")(f)  # fmt: skip
    f = click.option("--race-factor", help="Race: what competes (prompt, model, a var, ...).")(f)
    return click.option(
        "--race-score", help="Race the variants on this score (over the file's race:)."
    )(f)


def _race_option(
    off: bool,
    *,
    score: str | None,
    factor: str | None,
    confidence: float | None,
    min_cases: int | None,
    keep: int | None,
    seed: int | None,
    bounds: str | None,
) -> dict[str, Any] | bool | None:
    """The race options: settings over the file's race:, False (--no-race), or None (as
    the file says)."""
    given = {
        "score": score, "factor": factor, "confidence": confidence, "min_cases": min_cases,
        "keep": keep, "seed": seed, "bounds": _bounds(bounds, "--race-bounds"),
    }  # fmt: skip
    given = {k: v for k, v in given.items() if v is not None}
    if off and given:
        raise click.UsageError("--no-race runs the full grid: leave out the --race-* options")
    return False if off else (given or None)


def shard_option(f: F) -> F:
    """``--shard I/N``: one of N parts of the grid."""
    return click.option(
        "--shard", metavar="I/N",
        help="Only the I-th of N disjoint parts of the grid (I from 0), e.g. 2/8; auto: from "
        "the job runner (a Slurm array; a Kubernetes Indexed Job with PROMPTGRID_SHARD_COUNT); "
        "auto/N: the index from the job runner. Join the shards with promptgrid merge.",
    )(f)  # fmt: skip


def progress_option(f: F) -> F:
    """``--progress/--no-progress``."""
    return click.option(
        "--progress/--no-progress", default=None, help="Live progress (default: on a tty)."
    )(f)


def _out(message: str) -> None:
    """Print a line on stdout; data in it is shown, never obeyed (see ``terminal.visible``)."""
    click.echo(visible(message))


def _err(message: str) -> None:
    """Print a line on stderr, as :func:`_out` does."""
    click.echo(visible(message), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="promptgrid")
def cli() -> None:
    """Run prompt experiments against LLM APIs and get one comparable table.

    \b
    Example:
      promptgrid run experiments/animal_names.yaml --provider echo
    """


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check experiment files without running anything.

    \b
    Example:
      promptgrid validate experiments/*.yaml
    """
    from .api import Experiment
    from .errors import ExitCode, SpecError

    failed = False
    for file in files:
        try:
            experiment = Experiment.from_yaml(file)
        except SpecError as exc:
            _err(str(exc))
            failed = True
            continue
        for warning in experiment.warnings:
            _err(f"warning: {warning}")
        _out(f"{file}: ok ({experiment.total:,} calls)")
    if failed:
        sys.exit(ExitCode.BAD_INPUT)


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@results_dir_option
@endpoint_options
@limit_options
@max_cost_option
@click.option("--no-cache", is_flag=True, help="Do not count stored answers as cached.")
@click.option(
    "--batch/--no-batch", default=None, help="Price the calls as batches (default: the file's)."
)
@shard_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON, for scripts.")
@race_options
def plan(
    file: Path, no_cache: bool, as_json: bool, results_dir: Path, provider: str | None,
    base_url: str | None, rpm: float | None, tpm: int | None, concurrency: int | None,
    max_cost: float | None, batch: bool | None,
    race_score: str | None, race_factor: str | None, race_confidence: float | None,
    race_min_cases: int | None, race_keep: int | None, race_seed: int | None,
    race_bounds: str | None, no_race: bool, shard: str | None,
) -> None:  # fmt: skip
    """Show calls per axis, in total, already cached, tokens, cost and time; with a race,
    also the race's calls and cost (at least its first round, at most the full grid).

    \b
    Examples:
      promptgrid plan experiments/animal_names.yaml
      promptgrid plan experiments/animal_names.yaml --provider openai --max-cost 2 --json
      promptgrid plan experiments/racing.yaml --race-min-cases 30
      promptgrid plan experiments/animal_names.yaml --shard 2/8   # one shard's share
    """
    import json

    from .api import plan as make_plan

    race = _race_option(
        no_race,
        score=race_score,
        factor=race_factor,
        confidence=race_confidence,
        min_cases=race_min_cases,
        keep=race_keep,
        seed=race_seed,
        bounds=race_bounds,
    )
    made = make_plan(
        file, results_dir=results_dir, provider=provider, base_url=base_url, rpm=rpm, tpm=tpm,
        concurrency=concurrency, use_cache=False if no_cache else None, max_cost=max_cost,
        batch=batch, race=race, shard=shard,
    )  # fmt: skip
    _out(json.dumps(made.to_dict(), indent=2) if as_json else str(made))


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@endpoint_options
@limit_options
@results_dir_option
@format_option(None)
@click.option(
    "--resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN_ID]",
    help="Continue a run (default: the latest unfinished one) with its own settings.",
)  # fmt: skip
@click.option("--no-cache", is_flag=True, help="Send every call, even if answered before.")
@max_cost_option
@batch_options
@shard_option
@progress_option
@race_options
def run(
    file: Path, resume: str | None, no_cache: bool, results_dir: Path, formats: str | None,
    provider: str | None, base_url: str | None, rpm: float | None, tpm: int | None,
    concurrency: int | None, max_cost: float | None, batch: bool | None, wait: bool,
    progress: bool | None,
    race_score: str | None, race_factor: str | None, race_confidence: float | None,
    race_min_cases: int | None, race_keep: int | None, race_seed: int | None,
    race_bounds: str | None, no_race: bool, shard: str | None,
) -> None:  # fmt: skip
    """Run an experiment: every call, concurrently, saved as it arrives.

    Prints the run id and where the files are. Exit codes: 0 every call succeeded (or, with
    --batch, the batches are submitted); 3 some calls ended as error rows; 130/143/129
    interrupted by Ctrl-C/SIGTERM/SIGHUP (resume with --resume); 1 stopped by an
    authentication or quota failure; 4 stopped by the budget (--max-cost); 2 bad input;
    5 store failure.

    With --batch the calls go through the providers' Batch APIs and the run is "submitted":
    collect it later with `promptgrid batch collect RUN_ID`, or wait with --wait. The same
    command again continues it (it never submits a request twice).

    With a race: in the file (or --race-score), the variants are raced: round by round,
    those confidently worse than another stop being run (--race-* over the file's settings;
    --no-race runs the full grid). A resumed run races as it started.

    With --shard I/N it runs one of N disjoint parts of the grid (each cell's part follows from
    its request, so N machines cover the grid exactly once); promptgrid merge joins them.

    \b
    Examples:
      promptgrid run experiments/animal_names.yaml --provider echo
      promptgrid run experiments/animal_names.yaml --format xlsx,jsonl
      promptgrid run experiments/animal_names.yaml --resume
      promptgrid run experiments/animal_names.yaml --provider openai --max-cost 0.50
      promptgrid run experiments/animal_names.yaml --provider openai --batch --wait
      promptgrid run experiments/racing.yaml --race-confidence 0.99
      promptgrid run experiments/animal_names.yaml --shard 0/4 --results-dir results-0
    """
    from .api import Experiment
    from .operations import run_job

    race = _race_option(
        no_race,
        score=race_score,
        factor=race_factor,
        confidence=race_confidence,
        min_cases=race_min_cases,
        keep=race_keep,
        seed=race_seed,
        bounds=race_bounds,
    )
    job = run_job(
        Experiment.from_yaml(file), resume=resume is not None,
        run_id=None if resume in (None, "latest") else resume, results_dir=results_dir,
        provider=provider, base_url=base_url, rpm=rpm, tpm=tpm, concurrency=concurrency,
        formats=formats, use_cache=False if no_cache else None, max_cost=max_cost,
        progress=progress, batch=batch, wait=wait, race=race, shard=shard,
    )  # fmt: skip
    _run_and_report(job, file)


@cli.command()
@click.argument("run_id")
@results_dir_option
@limit_options
@format_option(None)
@max_cost_option
@batch_options
@progress_option
def retry(
    run_id: str, results_dir: Path, rpm: float | None, tpm: int | None,
    concurrency: int | None, formats: str | None, max_cost: float | None, batch: bool | None,
    wait: bool, progress: bool | None,
) -> None:  # fmt: skip
    """Re-run only the cells of a run that ended as error rows, where the run went: online,
    or with --batch as new batches (error rows of expired or cancelled batches included).

    \b
    Examples:
      promptgrid retry 20261124-105530.123-4f3a
      promptgrid retry 20261124-105530.123-4f3a --batch --wait
    """
    from .operations import retry_job

    job = retry_job(
        run_id, results_dir=results_dir, rpm=rpm, tpm=tpm, concurrency=concurrency,
        formats=formats, max_cost=max_cost, progress=progress, batch=batch, wait=wait,
    )  # fmt: skip
    _run_and_report(job, None)


@cli.command()
@results_dir_option
@click.option("--experiment", help="Only runs of this experiment.")
def runs(results_dir: Path, experiment: str | None) -> None:
    """List runs, newest first.

    \b
    Example:
      promptgrid runs --experiment animal-names
    """
    from .operations import run_lines, usd

    for line in run_lines(results_dir=results_dir, experiment=experiment):
        info, live = line.info, line.live
        _out(
            f"{info.run_id}  {info.experiment:<24} {line.endpoints:<24} {info.status:<11} "
            f"{line.ok:>6}/{info.total:<6} ok  {line.errors:>5} errors  {usd(line.spent)}"
            + (f"  {live} batch{'es' if live > 1 else ''} in flight" if live else "")
            + _shard_note(info.options)
        )


@cli.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path),
                metavar="DIR...")  # fmt: skip
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True,
              help="The results folder to merge into (new, or holding other runs).")  # fmt: skip
@click.option("--experiment", help="Only the shards of this experiment (folders holding several).")
@format_option(None)
def merge(sources: tuple[Path, ...], output: Path, experiment: str | None,
          formats: str | None) -> None:  # fmt: skip
    """Join the shards' results folders (runs made with --shard I/N) into one run.

    Every cell once, the cache and every attempt kept, costs summed; then load, show, report,
    contrast, export and retry work on the merged run as on one made on one machine. A shard
    missing or unfinished is named, and the merged run is incomplete: merge again when it is
    in (the same run is updated). Also shares a cache: the output holds every answer of every
    folder. Exit codes: 0 complete; 3 complete, with error rows; 7 a shard missing or
    unfinished; 2 shards of different experiments; 5 a shard still running.

    \b
    Examples:
      promptgrid merge results-0 results-1 results-2 results-3 -o results
      promptgrid merge shards/* -o results --format xlsx
    """
    from .api import merge as join

    merged = join(sources, output=output, experiment=experiment, formats=formats)
    for line in merged.summary():
        _out(line)
    for line in merged.problems():
        _err(line)
    sys.exit(merged.exit_code)


@cli.group()
def batch() -> None:
    """Follow, collect and cancel the batches of a run made with --batch.

    \b
    Examples:
      promptgrid batch status
      promptgrid batch collect 20261124-105530.123-4f3a --wait
      promptgrid batch cancel 20261124-105530.123-4f3a
    """


@batch.command("status")
@click.argument("run_id", required=False)
@results_dir_option
def batch_status(run_id: str | None, results_dir: Path) -> None:
    """Each batch of a run (default: the newest with batches): its state at the provider and
    its request counts. Writes nothing.

    \b
    Example:
      promptgrid batch status 20261124-105530.123-4f3a
    """
    from .operations import batch_rows

    rows = batch_rows(run_id, results_dir=results_dir)
    _out(f"run {rows[0].run_id}")
    for row in rows:
        counts = "" if row.total is None else (
            f"  {row.completed or 0:,}/{row.total:,} done, {row.failed or 0:,} failed"
        )  # fmt: skip
        _out(
            f"  chunk {row.chunk:<4} {row.endpoint:<12} {row.batch_id or '-':<30} "
            f"{row.status or row.state:<11} {row.requests:>7,} requests{counts}"
        )


@batch.command("collect")
@click.argument("run_id")
@results_dir_option
@click.option("--wait", is_flag=True, help="Poll until every batch is in (Ctrl-C stops waiting).")
@format_option(None)
@progress_option
def batch_collect(
    run_id: str, wait: bool, results_dir: Path, formats: str | None, progress: bool | None
) -> None:
    """Merge a run's ended batches (completed, failed, expired, cancelled) into its table.

    Exit codes as for run, and 6 when batches are still running (collect again later).

    \b
    Examples:
      promptgrid batch collect 20261124-105530.123-4f3a
      promptgrid batch collect 20261124-105530.123-4f3a --wait
    """
    from .operations import collect_job

    job = collect_job(
        run_id, results_dir=results_dir, wait=wait, formats=formats, progress=progress
    )
    _run_and_report(job, None)


@batch.command("cancel")
@click.argument("run_id")
@results_dir_option
def batch_cancel(run_id: str, results_dir: Path) -> None:
    """Cancel a run's batches; what already ran is kept. Collect afterwards.

    \b
    Example:
      promptgrid batch cancel 20261124-105530.123-4f3a
    """
    from .operations import cancel_rows

    rows = cancel_rows(run_id, results_dir=results_dir)
    for row in rows:
        _out(f"  chunk {row.chunk:<4} {row.batch_id or '-':<30} {row.status or row.state}")
    if all(row.state == "collected" for row in rows):
        _out("nothing to cancel: every batch of this run is collected")
    else:
        _out(f"collect with: {_collect_command(rows[0].run_id, results_dir)}")


@cli.command()
@click.argument("run_id", required=False)
@results_dir_option
@click.option("--columns", help="Comma-separated columns (default: the inputs that vary, "
              "the response, and the error if any call failed).")  # fmt: skip
@click.option("--limit", type=int, default=20, show_default=True, help="Rows to show.")
def show(run_id: str | None, results_dir: Path, columns: str | None, limit: int) -> None:
    """Print a run's table (default: the newest run), fitted to the terminal's width.

    \b
    Examples:
      promptgrid show
      promptgrid show RUN_ID --columns prompt,animal,response,latency_s
    """
    from .analysis import decide, varying
    from .api import load, standings

    df = load(run_id, results_dir=results_dir)
    table = df[_columns(df, columns)] if columns else varying(df)
    _console_frame(table, index=False, max_rows=limit)
    race = standings(str(df["run_id"].iloc[0]), results_dir=results_dir) if len(df) else None
    if race is not None:  # what the engine recorded round by round
        _out("\n" + race.report())
    verdicts = decide(df).verdicts()  # the same verdicts as the report's and the XLSX's
    if verdicts:
        _out("\nverdict:\n" + "\n".join(f"  {line}" for line in verdicts))
        _out(_verdict_pointer(str(df["run_id"].iloc[0]), results_dir))


@cli.command("compare")
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID] [RUN_B]")
@results_dir_option
@click.option("--rows", help="Comma-separated inputs down the side (default: the vars that vary).")
@click.option("--cols", help="Comma-separated inputs across (default: prompt, params that vary).")
@click.option("--values", default="response", show_default=True, help="The column in the cells.")
@click.option("--changed-only", is_flag=True, help="Two runs: only the calls whose values differ.")
@click.option("--limit", type=int, default=50, show_default=True, help="Rows to show.")
def compare_command(
    run_ids: tuple[str, ...], results_dir: Path, rows: str | None, cols: str | None,
    values: str, changed_only: bool, limit: int,
) -> None:  # fmt: skip
    """Print answers side by side, fitted to the terminal; or two runs call by call.

    One run (default: the newest): a row per combination of the vars, a column per prompt and
    varying params. Two runs: the calls aligned by their inputs (prompt, vars, params other
    than the ones that changed), one column per run, ≠ where the answers differ.

    \b
    Examples:
      promptgrid compare
      promptgrid compare RUN_ID --rows animal --cols prompt
      promptgrid compare RUN_A RUN_B --changed-only
    """
    from .analysis import compare
    from .api import load
    from .errors import UsageError

    if len(run_ids) > 2:
        raise UsageError("compare takes one run, or two to compare run against run")
    if len(run_ids) == 2:
        if rows or cols:
            raise UsageError("--rows and --cols lay out one run; two runs align by their inputs")
        a, b = (load(r, results_dir=results_dir) for r in run_ids)
        table = compare(a, b, values=values, changed_only=changed_only)
        changed = "; ".join(f"{k}: {' -> '.join(', '.join(map(str, v)) or '(absent)' for v in vs)}"
                            for k, vs in table.attrs.get("changed", {}).items())  # fmt: skip
        if changed:
            _out(f"changed: {changed}")
        _console_frame(table, title=f"{run_ids[0]} vs {run_ids[1]}", max_rows=limit)
        return
    if changed_only:
        raise UsageError("--changed-only compares two runs: promptgrid compare RUN_A RUN_B")
    df = load(run_ids[0] if run_ids else None, results_dir=results_dir)
    table = compare(df, _names(rows), _names(cols), values)
    _console_frame(table, title=str(df["run_id"].iloc[0]) if len(df) else None, max_rows=limit)


@cli.command()
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID ...]")
@results_dir_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file (default: the run's folder, report.html; for several runs "
              "RESULTS_DIR/reports/A_vs_B.html).")  # fmt: skip
@click.option("--title", help="The page's title (default: the experiment's name).")
def report(
    run_ids: tuple[str, ...], results_dir: Path, output: Path | None, title: str | None
) -> None:
    """Write a self-contained HTML report of a run, or of several run against run.

    \b
    Examples:
      promptgrid report                               # the newest run
      promptgrid report RUN_ID -o animals.html
      promptgrid report RUN_A RUN_B                   # run against run
    """
    from .api import load
    from .api import report as write
    from .operations import find_runs

    runs = find_runs(run_ids or (None,), results_dir=results_dir)
    frames = [load(info.run_id, results_dir=results_dir) for info in runs]
    if output is None:
        first = runs[0]
        output = results_dir / first.experiment / first.run_id / "report.html"
        if len(runs) > 1:
            output = results_dir / "reports" / ("_vs_".join(r.run_id for r in runs) + ".html")
    _out(str(write(frames, output, results_dir=results_dir, title=title)))


@cli.command()
@click.argument("run_id", required=False)
@results_dir_option
@format_option("csv")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="A file (one format) or a folder; default: the run's folder.")  # fmt: skip
@click.option("--repeats", type=click.Choice(["stack", "columns"]), default="stack",
              show_default=True, help="XLSX compare sheet: samples of a cell stacked in it, "
              "or a column each.")  # fmt: skip
@click.option(
    "--csv-verbatim",
    is_flag=True,
    help="CSV: write text exactly as stored, even "
    "cells a spreadsheet would run as formulas (=, +, -, @): default, a ' in front.",
)
def export(
    run_id: str | None, results_dir: Path, formats: str, output: Path | None, repeats: str,
    csv_verbatim: bool,
) -> None:  # fmt: skip
    """Write a run's table to files.

    \b
    Examples:
      promptgrid export 20261124-105530.123-4f3a --format xlsx -o animals.xlsx
      promptgrid export --format html                 # the newest run's report.html
      promptgrid export --format csv --csv-verbatim -o raw.csv   # formulas not neutralised
    """
    from .operations import export_run

    layout: Repeats = "columns" if repeats == "columns" else "stack"
    for path in export_run(run_id, results_dir=results_dir, formats=formats, output=output,
                           repeats=layout, csv_verbatim=csv_verbatim):  # fmt: skip
        _out(str(path))


@cli.command()
@click.argument("run_id")
@click.option("--scores", "scores_file", type=click.Path(path_type=Path),
              help="A YAML file of scores (scores: mapping); default: the run's own.")  # fmt: skip
@results_dir_option
@max_cost_option
@progress_option
def score(
    run_id: str,
    scores_file: Path | None,
    results_dir: Path,
    max_cost: float | None,
    progress: bool | None,
) -> None:
    """(Re)compute a run's scores from its stored answers; rewrite its files.

    The graded model is not called; judges only where the store holds no verdict for their
    request (scoring twice costs nothing the second time).

    \b
    Examples:
      promptgrid score 20261124-105530.123-4f3a
      promptgrid score 20261124-105530.123-4f3a --scores scores.yaml
    """
    from .errors import ExitCode
    from .operations import RunHandle, score_run

    handle = RunHandle()
    outcome = score_run(
        run_id, scores=scores_file, results_dir=results_dir, max_cost=max_cost,
        progress=progress, handle=handle,
    )  # fmt: skip
    _out(f"run {outcome.run_id}: scored {outcome.counts.get('ok', 0):,} answers")
    _report_scores(outcome)
    for path in outcome.files:
        _out(f"  {path}")
    # The run keeps its status (an interrupted run stays one until resumed): what counts here
    # is whether this scoring was stopped.
    stopped = handle.stops > 0 or outcome.summary.stopped_by is not None
    if stopped and outcome.status in ("stopped", "interrupted"):
        if outcome.summary.stopped_by is not None:
            _err(f"stopped: {outcome.summary.stopped_by}")
        _err(f"finish with: promptgrid score {outcome.run_id}"
             + (f" --results-dir {results_dir}" if results_dir != Path("results")
                else ""))  # fmt: skip
        sys.exit(outcome.exit_code)
    sys.exit(ExitCode.OK)


@cli.command()
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID] [RUN_B]")
@click.option("--factor", help="The input whose levels are compared: prompt, model, a var, ... "
              "(default: prompt; run_id for two runs).")  # fmt: skip
@click.option("--score", "score_name",
              help="The score to compare, e.g. correct (default: every score).")  # fmt: skip
@click.option("--on", help="Comma-separated inputs that pair cells (default: every input).")
@click.option("--against", help="Compare each level with this one, or 'best' (default: "
              "every pair of levels).")  # fmt: skip
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.95, show_default=True, help="Of the intervals and the tests.")  # fmt: skip
@results_dir_option
def contrast(
    run_ids: tuple[str, ...], factor: str | None, score_name: str | None, on: str | None,
    against: str | None, confidence: float, results_dir: Path,
) -> None:  # fmt: skip
    """Is one variant really better? Paired statistics between the levels of a factor.

    Cells are paired on every other input (named, with the inputs that changed between two
    runs, in the output); for each pair of levels: pairs, means, the difference with its
    interval, and an exact McNemar (pass/fail) or Wilcoxon signed-rank (numeric) test, saying
    so when the sample is too small to tell. Two runs: run against run, cells paired by their
    inputs.

    \b
    Examples:
      promptgrid contrast 20261124-105530.123-4f3a --factor prompt --score correct
      promptgrid contrast RUN_A RUN_B --score correct
    """
    import pandas as pd

    from .analysis import contrast as compute
    from .api import load
    from .errors import UsageError
    from .operations import score_columns

    if len(run_ids) > 2 or (len(run_ids) == 2 and run_ids[0] == run_ids[1]):
        raise UsageError("contrast takes one run, or two different runs to contrast")
    frames = [load(r, results_dir=results_dir) for r in (run_ids or (None,))]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    scores = [score_name] if score_name else score_columns(df)
    if not scores:
        raise UsageError("the run has no scores: add scores: to the experiment, or score it "
                         "with: promptgrid score RUN_ID --scores FILE")  # fmt: skip
    factor = factor or ("run_id" if len(frames) > 1 else "prompt")
    reports = [compute(df, factor=factor, score=s, on=_names(on), against=against,
                       confidence=confidence).report() for s in scores]  # fmt: skip
    _out("\n\n".join(reports))


@cli.command()
@click.argument("run_id", required=False)
@click.option("--score", "--race-score", "score_name",
              help="The score that decides (default: the run's race:).")  # fmt: skip
@click.option("--factor", "--race-factor", help="What competes: prompt (default), model, ...")
@click.option("--confidence", "--race-confidence",
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="The chance that the best is never dropped (default 0.95).")  # fmt: skip
@click.option("--min-cases", "--race-min-cases", type=click.IntRange(min=1),
              help="Blocks every variant runs before any drop (default 20).")  # fmt: skip
@click.option("--keep", "--race-keep", type=click.IntRange(min=1),
              help="Stop when this many survive (1).")  # fmt: skip
@click.option("--seed", "--race-seed", type=click.IntRange(min=0),
              help="Of the block order (default 0).")  # fmt: skip
@click.option("--bounds", "--race-bounds", metavar="LOW,HIGH",
              help="A python scorer's range (default 0,1).")  # fmt: skip
@results_dir_option
def replay(run_id: str | None, score_name: str | None, factor: str | None,
           confidence: float | None, min_cases: int | None, keep: int | None,
           seed: int | None, bounds: str | None, results_dir: Path) -> None:  # fmt: skip
    """Replay a stored full-grid run as a race, without a call.

    Which variant the race would name, when it would have dropped each of the others
    (against whom, the lead and its anytime-valid interval), and the calls it would have
    used against the full grid. Settings default to the run's race: (else the defaults);
    each option may also be spelt as run spells it (--race-confidence, ...).

    \b
    Example:
      promptgrid replay 20261124-105530.123-4f3a --score correct --confidence 0.95
    """
    from .api import replay as compute

    race = {"score": score_name, "factor": factor, "confidence": confidence,
            "min_cases": min_cases, "keep": keep, "seed": seed,
            "bounds": _bounds(bounds)}  # fmt: skip
    _out(compute(run_id, race=race, results_dir=results_dir).report())


@cli.command()
def schema() -> None:
    """Print the JSON Schema of experiment files (for editor completion).

    \b
    Example:
      promptgrid schema > promptgrid.schema.json
    """
    import json

    from .operations import json_schema

    _out(json.dumps(json_schema(), indent=2))


# --------------------------------------------------------------------------- helpers


def _shard_note(options: dict[str, Any]) -> str:
    """``  shard 1/4`` for a shard's run, ``  merged from 4 shards`` for a merged one."""
    if shard := options.get("shard"):
        return f"  shard {shard.get('index')}/{shard.get('count')}"
    if merged := options.get("merged"):
        return f"  merged from {merged.get('count')} shards"
    return ""


def _names(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _bounds(text: str | None, flag: str = "--bounds") -> list[float] | None:
    """``--bounds LOW,HIGH``."""
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        hint = f"{text!r} is not LOW,HIGH (e.g. 1,5)"
        raise click.BadParameter(hint, param_hint=flag) from None
    return [low, high]


def _columns(df: Any, text: str) -> list[str]:
    """``--columns`` checked against the table, with a did-you-mean."""
    import difflib

    from .errors import UsageError

    wanted = _names(text) or []
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        close = [difflib.get_close_matches(c, list(df.columns), n=1) for c in missing]
        hints = [f"{m!r} (did you mean {c[0]!r}?)" if c else repr(m)
                 for m, c in zip(missing, close, strict=True)]  # fmt: skip
        raise UsageError(
            f"no column {', '.join(hints)}; the table has {', '.join(map(str, df.columns))}"
        )
    return wanted


def _console_frame(table: Any, **options: Any) -> None:
    """Print a table with rich, fitted to the terminal (80 columns when not a terminal)."""
    from rich.console import Console

    from .terminal import print_frame

    print_frame(table, Console(), **options)


def resume_command(
    file: Path | None,
    run_id: str,
    results_dir: Path,
    *,
    max_cost: float | None = None,
    batch: bool = False,
) -> str:
    """The command that finishes a run: the run keeps its own settings, so only where its
    store is (and, after a budget stop, a higher cap; in batch mode, --batch) matters."""
    parts = ["promptgrid"]
    parts += ["run", str(file), "--resume", run_id] if file else ["retry", run_id]
    if results_dir != Path("results"):
        parts += ["--results-dir", str(results_dir)]
    if max_cost is not None:
        parts += ["--max-cost", f"{max_cost:g}"]
    if batch:
        parts += ["--batch"]
    return shlex.join(parts)


def _collect_command(run_id: str, results_dir: Path) -> str:
    parts = ["promptgrid", "batch", "collect", run_id]
    if results_dir != Path("results"):
        parts += ["--results-dir", str(results_dir)]
    return shlex.join(parts)


def _run_and_report(job: Job, file: Path | None) -> None:
    """Carry out ``job``, print what it did and exit with its code (a stop: how to resume)."""
    from .operations import RunHandle, execute

    def on_stop(n: int) -> None:
        if n == 1:
            _err("\nstopping: finishing calls in flight (press Ctrl-C again to stop now)")

    handle = RunHandle(on_stop)
    opts = job.options
    handle.finish = None  # the CLI says its own command (resume with: ...)
    if opts.progress is not False:
        handle.note = _err
    try:
        outcome = execute(job, handle)
    except KeyboardInterrupt as exc:
        _err(str(exc))
        if handle.run_id:
            command = resume_command(file, handle.run_id, opts.results_dir, batch=bool(opts.batch))
            _err(f"resume with: {command}")
        sys.exit(handle.exit_code)
    _report(outcome, file)
    sys.exit(outcome.exit_code)


def _report(outcome: RunOutcome, file: Path | None) -> None:
    from .errors import BudgetExceeded
    from .operations import race_lines, usd

    counts = outcome.counts
    judges = outcome.judge_totals
    apart = f" (judges {usd(judges[4])})" if judges else ""
    shard = outcome.config.shard
    _out(f"run {outcome.run_id}{f' (shard {shard})' if shard else ''}: {counts.get('ok', 0):,} ok, "
               f"{counts.get('error', 0):,} errors, {counts.get('cached', 0):,} cached "
               f"of {outcome.total:,} calls, {usd(outcome.spent)} spent{apart}")  # fmt: skip
    _report_scores(outcome)
    for line in race_lines(outcome):
        _out(f"race: {line}")
    for path in outcome.files:
        _out(f"  {path}")
    if outcome.scores:
        _out(_verdict_pointer(outcome.run_id, outcome.config.results_dir))
    for kind, n in sorted(outcome.summary.error_types.items(), key=lambda kv: -kv[1]):
        _err(f"  {n:>6} x {kind}")
    stopped_by = outcome.summary.stopped_by
    higher: float | None = None
    if outcome.status == "stopped" and stopped_by is not None:
        _err(f"stopped: {stopped_by}; {outcome.pending:,} cells left")
        if isinstance(stopped_by, BudgetExceeded):  # suggest room for what is left, at least
            higher = max(2 * stopped_by.cap, stopped_by.spent + 2 * stopped_by.next_worst)
    batched = outcome.batch
    results_dir = outcome.config.results_dir
    if batched is not None:
        _report_batches(outcome)
    if outcome.status in ("stopped", "interrupted"):
        command = resume_command(file, outcome.run_id, results_dir, max_cost=higher,
                                 batch=bool(outcome.config.batch_endpoints))  # fmt: skip
        _err(f"resume with: {command}")
    if batched is not None and batched.live:
        _err(f"collect with: {_collect_command(outcome.run_id, results_dir)}")


def _verdict_pointer(run_id: str, results_dir: Path) -> str:
    """Where a run's verdict is told in full (the report and the XLSX summary open on it)."""
    where = [] if results_dir == Path("results") else ["--results-dir", str(results_dir)]
    contrast, report = (
        shlex.join(["promptgrid", c, run_id, *where]) for c in ("contrast", "report")
    )
    return f"the verdict in full: {contrast}\n  the report opens on it: {report} (the XLSX too)"


def _report_batches(outcome: RunOutcome) -> None:
    """What batch mode did in this session, and what stands."""
    from .operations import usd

    batched = outcome.batch
    assert batched is not None  # a run with batch endpoints
    if batched.submitted:
        cached = f", {batched.cached:,} cells from the cache" if batched.cached else ""
        _out(f"batches: {batched.submitted:,} submitted ({batched.requests:,} requests){cached}")
    if batched.collected:
        rows = batched.ok + batched.errors
        _out(f"batches: {batched.collected:,} collected ({batched.ok:,} ok, "
                   f"{batched.errors:,} errors, {usd(batched.spent)}; {rows:,} rows in "
                   f"{batched.collect_s:.1f} s)")  # fmt: skip
        for kind, n in sorted(batched.error_types.items(), key=lambda kv: -kv[1]):
            _err(f"  {n:>6} x {kind}")
    if batched.unreadable:
        _err(f"warning: {batched.unreadable:,} lines of the batches' files named no request")
    if batched.live:
        _out(f"batches: {batched.live:,} not yet collected (run {outcome.status})")


def _report_scores(outcome: RunOutcome) -> None:
    """One line of scores (pass rates and means), and one of the judges' calls."""
    from .operations import usd

    if outcome.scores:
        parts = [
            f"{name} {mean:.3g} (n={n:,}{f', {errors:,} errors' if errors else ''})"
            if mean is not None else f"{name} - ({errors:,} errors)"
            for name, n, mean, errors in outcome.scores
        ]  # fmt: skip
        _out("scores: " + ", ".join(parts))
    if outcome.judge_totals is not None:
        calls, cached, failed, tokens, cost = outcome.judge_totals
        _out(f"judges: {calls:,} calls ({cached:,} cached, {failed:,} failed), "
                   f"{tokens:,} tokens, {usd(cost)}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning promptgrid errors into one message and an exit code."""
    import warnings

    from .errors import ExitCode, PromptgridError, PromptgridWarning

    def show(message: Any, category: Any, *rest: Any, **kw: Any) -> None:
        if issubclass(category, PromptgridWarning):
            _err(f"warning: {message}")
        else:
            shown(message, category, *rest, **kw)

    shown, warnings.showwarning = warnings.showwarning, show
    # Arrow's default pool (mimalloc) reserves ~20 MB up front for speed that exports of this
    # size do not need (same CPU on 20,000 rows; issue 24, bench_startup.py). The command owns
    # its process, so it picks the C allocator unless the user chose; the library does not.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    try:
        cli.main(args=argv, prog_name="promptgrid", standalone_mode=False)
    except PromptgridError as exc:
        _err(f"error: {exc}")
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _err("aborted")
        sys.exit(ExitCode.SIGINT)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(ExitCode.SIGINT)
    finally:
        warnings.showwarning = shown
