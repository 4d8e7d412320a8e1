"""Driving the async core from synchronous code, and turning signals into a graceful stop.

``run_sync`` runs a coroutine with ``asyncio.run`` in a script, or — when an event loop is
already running, as in a Jupyter kernel — on a dedicated event-loop thread, so ``run()`` works
without nest_asyncio.

Signals: SIGINT (Ctrl-C, the notebook's stop button), SIGTERM (``docker stop``, systemd, CI
cancellation) and SIGHUP (a closed terminal) all ask the run to stop the same way — stop
admitting calls, give the calls in flight a grace period, save, mark the run ``interrupted``.
A second signal cancels the calls in flight at once. :class:`RunHandle` remembers which signal
came first, so the CLI exits with 130, 143 or 129.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from .errors import ExitCode, UsageError

T = TypeVar("T")


class Stoppable(Protocol):
    """What a stop reaches: the scheduler, the batches being submitted or waited for, or the
    scoring worker (killed at once: a scorer may never return by itself)."""

    def stop(self) -> None:
        """Stop at the next safe point."""


#: The signals that stop a run gracefully, and the exit code each one gives.
STOP_SIGNALS: dict[int, ExitCode] = {
    signal.SIGINT: ExitCode.SIGINT,
    signal.SIGTERM: ExitCode.SIGTERM,
    **({signal.SIGHUP: ExitCode.SIGHUP} if hasattr(signal, "SIGHUP") else {}),
}


class RunHandle:
    """Lets another part of the program (a signal handler, a notebook thread) stop a run."""

    def __init__(self, on_stop: Callable[[int], None] | None = None) -> None:
        self.scheduler: Stoppable | None = None  # the phase running now
        self.task: asyncio.Task[Any] | None = None
        self.run_id: str | None = None
        self.stops = 0
        self.signal: int | None = None  # the first signal that stopped the run
        self.on_stop = on_stop  # told the number of the stop (1, 2, ...), e.g. to print a note
        self.note: Callable[[str], None] | None = None  # told batch mode's progress lines
        # how to finish a cancelled run, in the caller's words (the CLI prints its command)
        self.finish: str | None = "run(..., resume=True) finishes it"

    @property
    def exit_code(self) -> ExitCode:
        """The exit code of an interrupted run: by the signal that stopped it."""
        return STOP_SIGNALS.get(self.signal or signal.SIGINT, ExitCode.SIGINT)

    def stop(self, signum: int = signal.SIGINT) -> None:
        """First call: stop admitting calls, let those in flight finish. Second: cancel now."""
        self.stops += 1
        if self.signal is None:
            self.signal = signum
        if self.on_stop is not None:
            self.on_stop(self.stops)
        if self.stops == 1 and self.scheduler is not None:
            self.scheduler.stop()
        elif self.stops > 1 and self.task is not None:
            self.task.cancel()


def cancelled_message(handle: RunHandle | None) -> str:
    """What to say when a second stop cancelled the run."""
    run_id = handle.run_id if handle is not None else None
    run = f"run {run_id}" if run_id else "the run"
    finish = handle.finish if handle is not None else None
    return f"{run} cancelled; its completed rows are saved" + (f", {finish}" if finish else "")


def run_sync(coro: Coroutine[Any, Any, T], handle: RunHandle | None = None) -> T:
    """Drive a coroutine to completion from synchronous code, loop or no loop.

    With a ``handle``, SIGINT, SIGTERM and SIGHUP stop the run through it (first: stop
    admitting, second: cancel) instead of tearing the event loop down.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        try:
            return asyncio.run(_with_signals(coro, handle))
        except asyncio.CancelledError:
            if handle is not None and handle.stops:
                raise KeyboardInterrupt(cancelled_message(handle)) from None
            raise
    if running is _LoopThread._loop:
        coro.close()
        raise UsageError("promptgrid.run() cannot wait inside its own loop: use await arun()")
    return _LoopThread.run(coro, handle)


async def _with_signals(coro: Coroutine[Any, Any, T], handle: RunHandle | None) -> T:
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    if handle is not None:
        handle.task = asyncio.current_task()
        for signum in STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, handle.stop, signum)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows; not main thread
                pass
    try:
        return await coro
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


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

        async def main() -> T:
            if handle is not None:
                handle.task = asyncio.current_task()
            return await coro

        future = asyncio.run_coroutine_threadsafe(main(), loop)
        while True:
            try:
                return future.result()
            except KeyboardInterrupt:
                # The stop button, delivered to this (the main) thread while it waits. The run
                # stops in its own loop; keep waiting, so its rows are saved before we return.
                if handle is None:
                    future.cancel()
                else:
                    loop.call_soon_threadsafe(handle.stop, signal.SIGINT)
            except concurrent.futures.CancelledError:
                raise KeyboardInterrupt(cancelled_message(handle)) from None
