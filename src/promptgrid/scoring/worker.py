"""The scoring worker: a child process that computes every score but a judge's, under limits.

A score is code run on untrusted text — a ``python:`` function, a regex on Python's ``re``, a
JSON schema walking a hostile document. In the main process such code could hold the GIL for
hours (a backtracking regex), loop where no signal reaches it (``while True: pass`` in a
thread), or end the process (``sys.exit``). So scores run in a child process the main process
can kill: :class:`ScoringWorker` is the main process's side, :func:`main` the child's.

- **Time limits.** Each score on each answer is one *job*. The worker answers every job as it
  finishes, so the main process knows which one is running and since when; a job past its
  score's ``timeout_s`` is that row's error, the worker is killed (with its process group) and
  a fresh one goes on with the next job. A worker that dies (``os._exit``, a crash, memory) is
  the running job's error the same way. ``sys.exit`` and every exception are caught in the
  worker: that job's error, and the worker goes on.
- **Batches.** Jobs go to the worker a chunk at a time (one frame for a chunk's rows and jobs);
  answers come back one frame per job into a pipe the main process reads every few milliseconds
  (not on every write: waking up for each answer cost more than a cheap answer), so a cheap
  check costs some 20 microseconds of CPU more than in-process, not a round trip.
- **Stop.** :meth:`ScoringWorker.stop` (the first Ctrl-C or SIGTERM) kills the worker at once;
  the jobs answered so far are kept, the rest stay unscored (``promptgrid score`` or a resume
  scores them). The worker runs in a session of its own, so a Ctrl-C in the terminal reaches
  only the main process, which decides; it exits by itself if the main process disappears.
- **Where.** The worker is ``sys.executable`` with the main process's ``sys.path``; its scores
  are compiled again from their definitions (:func:`promptgrid.spec.scores.recompile`), so a
  ``python:`` function is imported there as it was at validation. What the function prints
  goes to stderr (stdout carries the frames).

Frames are an 8-byte big-endian length and a pickle, over the child's stdin and stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..spec.scores import ScoreDef
from ..spec.yamlmarks import shorten
from .custom import Output

__all__ = ["START_TIMEOUT_S", "Job", "Result", "RowData", "ScoringWorker", "main"]

#: (answer, the row's values, the ``row`` a python scorer sees or None): one answered row.
RowData = tuple[str | None, dict[str, Any], dict[str, Any] | None]
#: (position of the row in the batch, score name): one score of one answer.
Job = tuple[int, str]
#: (outputs, None) or (None, the error): what one job gave.
Result = tuple[list[Output] | None, str | None]
#: How long a worker may take to start and import its scorers (a python scorer's module may
#: import a large library: this is not its time limit).
START_TIMEOUT_S = 120.0

_HEADER = struct.Struct(">Q")
#: How often the answers' pipe is read while answers come (the wait doubles up to
#: ``_POLL_MAX_S`` while none do). A time-out is noticed at most this much late.
_POLL_S = 0.002
_POLL_MAX_S = 0.05
#: Rows sent to the worker in one frame.
_SLICE_ROWS = 64


def _frame(value: object) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _slices(rows: Sequence[RowData], jobs: Sequence[Job]) -> Iterator[bytes]:
    """The jobs as frames of up to ``_SLICE_ROWS`` rows each (with their rows), so the worker
    starts on the first while the others are pickled, and no frame holds a whole chunk."""
    start = 0
    while start < len(jobs):
        first = jobs[start][0]
        end = start
        while end < len(jobs) and jobs[end][0] < first + _SLICE_ROWS:
            end += 1
        last = jobs[end - 1][0]
        moved = [(row - first, name) for row, name in jobs[start:end]]
        yield _frame((rows[first : last + 1], moved))
        start = end


class _Gone(Exception):
    """The worker ended (or was killed) before answering."""


class ScoringWorker:
    """The main process's side: starts the worker when first needed, sends it jobs, enforces
    each score's time limit, and starts it again after a time-out or a crash."""

    def __init__(self, scores: Sequence[ScoreDef], scores_dir: Path) -> None:
        self._scores = {s.name: s for s in scores if s.judge is None}
        self._scores_dir = scores_dir
        self._proc: asyncio.subprocess.Process | None = None
        self._answers = -1  # the read end of the worker's answers (non-blocking)
        self._buffer = bytearray()
        self._stopped = False
        self._broken: str | None = None  # why the worker cannot start: every job's error
        self._idle_deaths = 0

    def stop(self) -> None:
        """Kill the worker now; :meth:`score` returns the jobs answered so far."""
        self._stopped = True
        self._kill()

    async def aclose(self) -> None:
        """Kill the worker (if any) and wait for it."""
        self._kill()
        if self._proc is not None:
            await self._proc.wait()
            self._proc = None
        if self._answers >= 0:
            os.close(self._answers)
            self._answers = -1

    async def score(self, rows: Sequence[RowData], jobs: Sequence[Job]) -> list[Result]:
        """One result per job, in order; fewer when :meth:`stop` was called meanwhile."""
        results: list[Result] = []
        while len(results) < len(jobs) and not self._stopped:
            if self._broken is not None:
                results.append((None, self._broken))
                continue
            try:
                await self._run(rows, jobs, results)
            except _Gone as gone:
                if self._stopped:
                    break
                results.append((None, str(gone)))  # the job that was running: its error
                await self.aclose()
        return results

    async def _run(self, rows: Sequence[RowData], jobs: Sequence[Job], out: list[Result]) -> None:
        """Send the jobs not answered yet; read answers into ``out`` until all are in."""
        if self._proc is None:
            await self._start()
        assert self._proc is not None and self._proc.stdin is not None
        frames = _slices(rows, jobs[len(out) :])
        try:  # the worker is idle, reading: wait until the first slice is in
            self._proc.stdin.write(next(frames))
            await self._proc.stdin.drain()
        except ConnectionError:  # it ended between two chunks: no job was running
            self._idle_deaths += 1
            if self._idle_deaths > 3:
                self._broken = "the scoring process keeps ending by itself"
            await self.aclose()
            return
        for frame in frames:  # no drain: it scores the first slice while these are made and
            self._proc.stdin.write(frame)  # sent, and its answers are read meanwhile
        since = time.monotonic()
        while len(out) < len(jobs):
            name = jobs[len(out)][1]
            limit = self._scores[name].timeout_s
            answer = await self._answer(since + limit, f"took longer than {limit:g} s (timeout_s)")
            out.append(answer)
            since = time.monotonic()

    async def _start(self) -> None:
        if self._stopped:
            raise _Gone("stopped")
        boot = f"import sys; sys.path[:] = {sys.path!r}; " + (
            "from promptgrid.scoring.worker import main; main()"
        )
        self._buffer.clear()
        self._answers, answers = os.pipe()
        os.set_blocking(self._answers, False)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", boot, stdin=asyncio.subprocess.PIPE, stdout=answers,
                start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(answers)  # the worker's copy is the only one: its end is our EOF
        if self._stopped:  # a stop came while it started
            self._kill()
            raise _Gone("stopped")
        assert self._proc.stdin is not None
        specs = {
            n: s.spec.model_dump(mode="json", exclude_unset=True) for n, s in self._scores.items()
        }
        self._proc.stdin.write(_frame((str(self._scores_dir), specs)))
        try:
            await self._proc.stdin.drain()
            await self._answer(time.monotonic() + START_TIMEOUT_S, "it did not start in time")
        except (_Gone, ConnectionError) as exc:
            if self._stopped:
                raise _Gone("stopped") from None
            self._broken = f"the scoring process could not start: {exc}"
            raise _Gone(self._broken) from None

    async def _answer(self, deadline: float, late: str) -> Any:
        """The next frame from the worker; :class:`_Gone` (the worker killed) if it does not
        come by ``deadline`` or the worker ends first."""
        wait = _POLL_S
        while True:
            if len(self._buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buffer)
                if len(self._buffer) >= _HEADER.size + size:
                    data = bytes(self._buffer[_HEADER.size : _HEADER.size + size])
                    del self._buffer[: _HEADER.size + size]
                    try:
                        return pickle.loads(data)
                    except Exception:  # something wrote into the frames: trust none of it
                        self._kill()
                        raise _Gone("the scoring process sent an unreadable answer") from None
            try:
                chunk = os.read(self._answers, 1 << 20)
            except BlockingIOError:  # nothing yet
                now = time.monotonic()
                if now >= deadline:
                    self._kill()
                    raise _Gone(late) from None
                await asyncio.sleep(min(wait, deadline - now))
                wait = min(2 * wait, _POLL_MAX_S)
                continue
            if not chunk:
                raise _Gone(await self._ended())
            self._buffer += chunk
            wait = _POLL_S

    async def _ended(self) -> str:
        assert self._proc is not None
        code = await self._proc.wait()
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        return f"the scoring process ended ({how}) while scoring this answer"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)  # its own session: its children too


# ---------------------------------------------------------------------------- in the worker


def main() -> None:
    """The worker: read the scores, then answer jobs until stdin closes."""
    frames_in = os.fdopen(os.dup(0), "rb")
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # a scorer reading stdin reads nothing
    os.dup2(2, 1)  # and what it prints goes to stderr, not into the frames
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    scores_dir, specs = _read(frames_in)
    scores, failed = _compile(Path(scores_dir), specs)
    _write(frames_out, failed)
    while (batch := _read(frames_in)) is not None:
        rows, jobs = batch
        for row, name in jobs:
            why = failed.get(name)
            _write(frames_out, (None, why) if why else _job(scores[name], rows[row]))


def _compile(
    scores_dir: Path, specs: Mapping[str, Any]
) -> tuple[dict[str, ScoreDef], dict[str, str]]:
    from ..spec.schema import ScoreSpec
    from ..spec.scores import recompile

    compiled, failed = recompile(
        {name: ScoreSpec.model_validate(spec) for name, spec in specs.items()}, scores_dir
    )
    return {s.name: s for s in compiled}, {
        name: f"cannot be loaded in the scoring process: {why}" for name, why in failed.items()
    }


def _job(score: ScoreDef, row: RowData) -> Result:
    from . import custom
    from .checks import ScoreFailure, evaluate

    answer, values, python_row = row
    try:
        if score.kind == "python":
            return custom.call(score, answer, python_row or {}), None
        return [(score.name, score.column_kind, float(evaluate(score, answer, values)))], None
    except ScoreFailure as exc:
        return None, str(exc)
    except SystemExit as exc:
        return None, f"called sys.exit({exc.code!r})"
    except BaseException as exc:  # whatever user code raises is this one row's error
        return None, _describe(exc)


def _describe(exc: BaseException) -> str:
    try:
        text = shorten(str(exc), 300)
    except Exception:  # an exception whose message itself fails
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def _write(stream: BinaryIO, value: object) -> None:
    stream.write(_frame(value))
    stream.flush()  # now: the main process times the next job from this answer


def _exit_with(parent: int) -> None:
    """End the worker when the main process is gone (killed with SIGKILL: nobody else will)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
