"""The live progress line: done/total, calls per second, errors, ETA — quiet when not a terminal.

In a terminal rich draws it. In a Jupyter kernel rich's live display needs ipywidgets (without
them it only warns), so there one output area is updated in place through IPython's display
handle instead: one line per run, whatever its length, and nothing extra to install.
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any, Protocol

from .money import usd
from .terminal import visible


class Progress(Protocol):
    """What the scheduler reports to; ``advance`` is called after results are committed."""

    def start(self, total: int, done: int = 0, spent: float = 0.0) -> None: ...
    def advance(self, n: int, errors: int = 0, cached: int = 0, spent: float = 0.0) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    """Reports nothing (scripts, CI, tests)."""

    def start(self, total: int, done: int = 0, spent: float = 0.0) -> None:
        """Nothing to show."""

    def advance(self, n: int, errors: int = 0, cached: int = 0, spent: float = 0.0) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


class RichProgress:
    """One updating line in a terminal, drawn by rich."""

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
            TextColumn(
                "{task.fields[errors]} errors · {task.fields[cached]} cached · {task.fields[money]}"
            ),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,
        )
        from rich.markup import escape

        self._description = escape(visible(description))  # shown as written, never obeyed
        self._task: Any = None
        self._errors = 0
        self._cached = 0
        self._spent = 0.0

    def start(self, total: int, done: int = 0, spent: float = 0.0) -> None:
        """Show the bar."""
        self._spent = spent
        self._progress.start()
        self._task = self._progress.add_task(
            self._description, total=total, completed=done, errors=0, cached=0, money=usd(spent)
        )

    def advance(self, n: int, errors: int = 0, cached: int = 0, spent: float = 0.0) -> None:
        """Count ``n`` more finished cells."""
        self._errors += errors
        self._cached += cached
        self._spent += spent
        self._progress.update(
            self._task, advance=n, errors=self._errors, cached=self._cached, money=usd(self._spent)
        )

    def close(self) -> None:
        """Draw the final state and stop refreshing."""
        self._progress.stop()


class NotebookProgress:
    """One output area of a Jupyter notebook, updated in place (``display_id``), at most
    ``1 / interval_s`` times a second, and redrawn by a timer so the rate and ETA stay live
    while no call finishes.

    The timer also wakes the kernel's event loop: ipykernel turns the stop button into a
    cancellation that an idle loop only notices when it next wakes (ipykernel issue #881).
    """

    def __init__(self, description: str, interval_s: float = 0.25) -> None:
        self._description = description
        self._interval_s = interval_s
        self._handle: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._total = self._done = self._errors = self._cached = self._session = 0
        self._spent = 0.0
        self._started = self._drawn = 0.0
        self._closed = False

    def start(self, total: int, done: int = 0, spent: float = 0.0) -> None:
        """Show the line (from inside the run's event loop)."""
        from IPython.display import display

        self._total, self._done, self._spent = total, done, spent
        self._started = time.monotonic()
        self._handle = display(self._bundle(), raw=True, display_id=True)  # type: ignore[no-untyped-call]
        self._drawn = self._started
        self._schedule()

    def advance(self, n: int, errors: int = 0, cached: int = 0, spent: float = 0.0) -> None:
        """Count ``n`` more finished cells; redraw if the last drawing is old enough."""
        self._done += n
        self._session += n
        self._errors += errors
        self._cached += cached
        self._spent += spent
        if time.monotonic() - self._drawn >= self._interval_s:
            self._draw()

    def close(self) -> None:
        """Draw the final state and stop the timer."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._draw()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self._interval_s * 2, self._tick)

    def _tick(self) -> None:
        if not self._closed:
            self._draw()
            self._schedule()

    def _draw(self) -> None:
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)
            self._drawn = time.monotonic()

    def _bundle(self) -> dict[str, str]:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self._session / elapsed
        left = self._total - self._done
        if self._closed:
            tail = f"done in {elapsed:.1f}s"
        elif rate > 0:
            tail = f"ETA {_duration(left / rate)}"
        else:
            tail = "ETA -"
        stats = (
            f"{self._done:,}/{self._total:,} · {rate:,.0f} calls/s · {self._errors:,} errors · "
            f"{self._cached:,} cached · {usd(self._spent)} · {tail}"
        )
        filled = round(20 * self._done / self._total) if self._total else 20
        bar = "█" * filled + "░" * (20 - filled)
        name = html.escape(self._description)
        return {
            "text/plain": f"{visible(self._description)} {bar} {stats}",
            "text/html": (
                '<div style="font-family:monospace;white-space:nowrap">'
                f"<b>{name}</b> "
                f'<progress value="{self._done}" max="{max(self._total, 1)}" '
                'style="width:12em;vertical-align:middle"></progress> '
                f"{html.escape(stats)}</div>"
            ),
        }


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def make_progress(description: str, enabled: bool | None = None) -> Progress:
    """A progress line when output is a terminal or a notebook (or ``enabled``), else none."""
    if enabled is False:
        return NullProgress()
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_jupyter:
        return NotebookProgress(description)
    if enabled is None and not console.is_terminal:
        return NullProgress()
    return RichProgress(description, console)
