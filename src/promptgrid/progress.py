"""The live progress line: done/total, calls per second, errors, ETA — quiet when not a terminal."""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    """What the scheduler reports to; ``advance`` is called after results are committed."""

    def start(self, total: int, done: int = 0) -> None: ...
    def advance(self, n: int, errors: int = 0, cached: int = 0) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    """Reports nothing (scripts, CI, tests)."""

    def start(self, total: int, done: int = 0) -> None:
        """Nothing to show."""

    def advance(self, n: int, errors: int = 0, cached: int = 0) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


class RichProgress:
    """One updating line (in a terminal or a notebook) drawn by rich."""

    def __init__(self, description: str, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{task.speed or 0:,.0f} calls/s", style="progress.data.speed")

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            Rate(),
            TextColumn("{task.fields[errors]} errors · {task.fields[cached]} cached"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,
        )
        self._description = description
        self._task: Any = None
        self._errors = 0
        self._cached = 0

    def start(self, total: int, done: int = 0) -> None:
        """Show the bar."""
        self._progress.start()
        self._task = self._progress.add_task(
            self._description, total=total, completed=done, errors=0, cached=0
        )

    def advance(self, n: int, errors: int = 0, cached: int = 0) -> None:
        """Count ``n`` more finished cells."""
        self._errors += errors
        self._cached += cached
        self._progress.update(
            self._task, advance=n, errors=self._errors, cached=self._cached
        )

    def close(self) -> None:
        """Draw the final state and stop refreshing."""
        self._progress.stop()


def make_progress(description: str, enabled: bool | None = None) -> Progress:
    """A rich progress line when output is a terminal or a notebook (or ``enabled``), else none."""
    if enabled is False:
        return NullProgress()
    from rich.console import Console

    console = Console(stderr=True)
    if enabled is None and not (console.is_terminal or console.is_jupyter):
        return NullProgress()
    return RichProgress(description, console)
