"""The ``promptgrid`` command: a thin layer over the library.

Each command parses its options, calls one library function and prints the result. Errors are
turned into one message and an exit code in one place (``main``): 2 bad input, 3 a run with
error rows, 130 interrupted, 1 a run stopped by an authentication or quota failure.
Only click is imported at start-up; the library is imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

RESULTS_DIR = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Where the store (promptgrid.sqlite) and exported files live.",
)


def _err(message: str) -> None:
    click.echo(message, err=True)


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
    from .errors import SpecError
    from .spec import Experiment

    failed = False
    for file in files:
        try:
            experiment = Experiment.from_yaml(file)
        except SpecError as exc:
            _err(str(exc))
            failed = True
            continue
        click.echo(f"{file}: ok ({experiment.total:,} calls)")
    if failed:
        sys.exit(2)


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@RESULTS_DIR
@click.option("--provider", help="Send every call to this provider (e.g. echo).")
@click.option("--no-cache", is_flag=True, help="Do not count stored answers as cached.")
def plan(file: Path, results_dir: Path, provider: str | None, no_cache: bool) -> None:
    """Show calls per axis, in total, already cached, tokens, cost and time.

    \b
    Example:
      promptgrid plan experiments/animal_names.yaml
    """
    from .api import plan as make_plan

    click.echo(str(make_plan(file, results_dir=results_dir, provider=provider,
                             use_cache=not no_cache)))  # fmt: skip


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--provider", help="Send every call to this provider: echo (offline), openai, ...")
@click.option("--base-url", help="OpenAI-compatible endpoint URL for that provider.")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Calls in flight at most.")
@RESULTS_DIR
@click.option("--format", "formats", default="parquet,csv", show_default=True,
              help="Files to write: any of parquet,csv,xlsx,jsonl.")  # fmt: skip
@click.option(
    "--resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN_ID]",
    help="Continue a run (default: the latest unfinished one).",
)  # fmt: skip
@click.option("--no-cache", is_flag=True, help="Send every call, even if answered before.")
@click.option("--progress/--no-progress", default=None, help="Live progress (default: on a tty).")
def run(file: Path, resume: str | None, no_cache: bool, **options: Any) -> None:
    """Run an experiment: every call, concurrently, saved as it arrives.

    Prints the run id and where the files are. Exit code 0: every call succeeded;
    3: some calls ended as error rows; 130: interrupted (resume with --resume).

    \b
    Examples:
      promptgrid run experiments/animal_names.yaml --provider echo
      promptgrid run experiments/animal_names.yaml --format xlsx,jsonl
      promptgrid run experiments/animal_names.yaml --resume
    """
    from .runner import RunOptions

    target = True if resume == "latest" else resume
    opts = RunOptions.from_kwargs(resume=target or False, use_cache=not no_cache, **options)
    _run_and_report(file, opts)


@cli.command()
@click.argument("run_id")
@RESULTS_DIR
@click.option("--format", "formats", default="parquet,csv", show_default=True,
              help="Files to write: any of parquet,csv,xlsx,jsonl.")  # fmt: skip
@click.option("--progress/--no-progress", default=None, help="Live progress (default: on a tty).")
def retry(run_id: str, results_dir: Path, formats: str, progress: bool | None) -> None:
    """Re-run only the cells of a run that ended as error rows.

    \b
    Example:
      promptgrid retry 20261124-105530.123-4f3a
    """
    from .api import stored_experiment
    from .runner import RunOptions

    experiment, info = stored_experiment(run_id, results_dir)
    opts = RunOptions.from_kwargs(
        retry_errors=info.run_id, results_dir=results_dir, formats=formats, progress=progress,
        provider=info.options.get("provider"), base_url=info.options.get("base_url"),
    )  # fmt: skip
    _run_and_report(experiment, opts)


@cli.command()
@RESULTS_DIR
@click.option("--experiment", help="Only runs of this experiment.")
def runs(results_dir: Path, experiment: str | None) -> None:
    """List runs, newest first.

    \b
    Example:
      promptgrid runs --experiment animal-names
    """
    from .store import Store

    with Store.in_dir(results_dir) as store:
        for info in store.runs(experiment):
            counts = store.counts(info.run_id)
            click.echo(
                f"{info.run_id}  {info.experiment:<24} {info.status:<11} "
                f"{counts.get('ok', 0):>6}/{info.total:<6} ok  {counts.get('error', 0):>5} errors"
            )


@cli.command()
@click.argument("run_id", required=False)
@RESULTS_DIR
@click.option("--columns", help="Comma-separated columns to show.")
@click.option("--limit", type=int, default=20, show_default=True, help="Rows to show.")
def show(run_id: str | None, results_dir: Path, columns: str | None, limit: int) -> None:
    """Print a run's table (default: the newest run).

    \b
    Example:
      promptgrid show --columns prompt,animal,response
    """
    import pandas as pd

    from .api import load

    df = load(run_id, results_dir=results_dir)
    if columns:
        df = df[[c.strip() for c in columns.split(",")]]
    with pd.option_context("display.max_colwidth", 60, "display.width", 200):
        click.echo(df.head(limit).to_string(index=False))
    if len(df) > limit:
        click.echo(f"... {len(df) - limit:,} more rows")


@cli.command()
@click.argument("run_id", required=False)
@RESULTS_DIR
@click.option("--format", "formats", default="csv", show_default=True,
              help="Any of parquet,csv,xlsx,jsonl.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="A file (one format) or a folder; default: the run's folder.")  # fmt: skip
def export(run_id: str | None, results_dir: Path, formats: str, output: Path | None) -> None:
    """Write a run's table to files.

    \b
    Example:
      promptgrid export 20261124-105530.123-4f3a --format xlsx -o animals.xlsx
    """
    from .results import export as write
    from .results import parse_formats, resolve_run
    from .store import Store

    with Store.in_dir(results_dir) as store:
        info = resolve_run(store, run_id)
        target = output or results_dir / info.experiment / info.run_id
        for path in write(store, info, target, parse_formats(formats)):
            click.echo(str(path))


@cli.command()
def schema() -> None:
    """Print the JSON Schema of experiment files (for editor completion).

    \b
    Example:
      promptgrid schema > promptgrid.schema.json
    """
    import json

    from .spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


# --------------------------------------------------------------------------- helpers


def _run_and_report(source: Any, opts: Any) -> None:
    from .api import experiment_of, run_sync
    from .runner import RunHandle, execute

    def on_stop(n: int) -> None:
        if n == 1:
            _err("\nstopping: finishing calls in flight (Ctrl-C again to stop now)")

    experiment = experiment_of(source)
    handle = RunHandle(on_stop)
    where = f"{source} " if isinstance(source, str | Path) else ""
    try:
        outcome = run_sync(execute(experiment, opts, handle), handle)
    except KeyboardInterrupt as exc:
        _err(f"{exc}\nresume with: promptgrid run {where}--resume")
        sys.exit(130)
    counts = outcome.counts
    click.echo(f"run {outcome.run_id}: {counts.get('ok', 0):,} ok, "
               f"{counts.get('error', 0):,} errors, {counts.get('cached', 0):,} cached "
               f"of {outcome.total:,} calls")  # fmt: skip
    for path in outcome.files:
        click.echo(f"  {path}")
    for kind, n in sorted(outcome.summary.error_types.items(), key=lambda kv: -kv[1]):
        _err(f"  {n:>6} x {kind}")
    if outcome.status == "stopped" and outcome.summary.stopped_by is not None:
        _err(f"stopped: {outcome.summary.stopped_by}")
    if outcome.status in ("stopped", "interrupted"):
        _err(f"resume with: promptgrid run {where}--resume {outcome.run_id}")
    sys.exit(outcome.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning promptgrid errors into one message and an exit code."""
    from .errors import PromptgridError

    try:
        cli.main(args=argv, prog_name="promptgrid", standalone_mode=False)
    except PromptgridError as exc:
        _err(f"error: {exc}")
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _err("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
