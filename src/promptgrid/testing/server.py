"""Serving a fault server: on a loopback socket, and in-process on a thread of its own.

:class:`FaultServer` runs its event loop on a daemon thread so one ``with FaultServer() as s:``
works in sync tests, async tests and notebooks alike: the server never competes with the
caller's loop, and the caller's blocking calls never freeze the server. :class:`_Controls` is
the steering API it shares with :class:`~promptgrid.testing.RemoteFaultServer`, which steers a
server in another process over HTTP instead.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from .batch import BatchControls
from .core import _Core

__all__ = ["FaultServer"]


async def listen(core: _Core, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``core`` on 127.0.0.1:``port`` (0 = any free port); returns the runner and port."""
    runner = web.AppRunner(
        core.app(),
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,  # a client that leaves cancels its stall
        shutdown_timeout=0.5,
    )
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if port:  # a fixed port may still hold a previous run's TIME_WAIT connections
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # loopback only: a test server is nobody else's business
        await web.SockSite(runner, sock, backlog=1024).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return runner, sock.getsockname()[1]


async def close(core: _Core, runner: web.AppRunner) -> None:
    """Stop serving; sleeping handlers are woken first, or a stall would hold the stop."""
    core.wake()
    await runner.cleanup()


class _Controls:
    """The control API shared by :class:`FaultServer` and :class:`RemoteFaultServer`."""

    def _act(self, action: str, data: Any = None) -> Any:
        raise NotImplementedError

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings (the :class:`FaultServer` arguments but ``port``) and return them all.
        Changing ``rpm`` or ``tpm`` refills every bucket; changing ``seed`` restarts the draws."""
        return dict(self._act("config", changes))

    def config(self) -> dict[str, Any]:
        """The current settings."""
        return dict(self._act("config"))

    def script(self, faults: Iterable[str]) -> None:
        """Append faults for the next requests, in arrival order (``"ok"``: a normal answer)."""
        self._act("script", list(faults))

    def script_for(self, substring: str, faults: Iterable[str]) -> None:
        """Append faults for requests whose last user message contains ``substring``; these are
        used before the general script."""
        self._act("script", {"by_content": {substring: list(faults)}})

    def answer_for(self, substring: str, text: str) -> None:
        """Answer every request whose last user message contains ``substring`` with ``text``
        (the ``answers`` setting; a scripted fault still comes first)."""
        self.configure(answers={**self.config()["answers"], substring: text})

    def stats(self) -> dict[str, Any]:
        """Counters: ``requests`` received, ``in_flight``, ``by_outcome`` (``"200"``, a status, a
        fault name, or ``"cancelled"`` when the client left during ``latency_s``), ``by_key``,
        ``injected`` faults, ``rate_limited`` (bucket 429s by type), ``answered`` (last user
        messages answered by a complete 200) and ``pending_script``."""
        return {k: Counter(v) if isinstance(v, dict) else v for k, v in self._act("stats").items()}

    def reset_stats(self) -> None:
        """Zero the counters."""
        self._act("reset", {"stats_only": True})

    def reset(self) -> None:
        """Zero the counters, refill the buckets, drop pending scripts and reseed the draws."""
        self._act("reset", {})


class FaultServer(_Controls):
    """An OpenAI-compatible fault server on 127.0.0.1, served from a background thread.

    ``rpm``/``tpm``: per-key limits (``None`` or 0 = unlimited, and no ``x-ratelimit-*`` headers);
    ``latency_s``: delay before each 200-class answer; ``fault_rates``: e.g.
    ``{"429": 0.1, "5xx": 0.15, "drop": 0.02}`` drawn from ``random.Random(seed)`` (names: an HTTP
    status, ``"5xx"`` or a key of :data:`~promptgrid.testing.FAULTS`); ``api_keys``: allowed
    bearer tokens (others get 401); ``retry_after_s``: ``retry-after`` of injected 429s;
    ``stall_s``: how long ``"stall"`` holds a request; ``model_suffix``: appended to the answered
    ``model`` (e.g. ``"-2024-07-18"``); ``bad_retry_after``: the unusable ``retry-after`` that
    ``"retry_after_bad"`` sends (``"-5"``, ``"nan"``, ``"0"``, a past HTTP date); ``bad_usage``:
    what every usage number of a ``"bad_usage"`` answer says (``"n/a"``, ``float("nan")``,
    ``float("inf")``, ``-1``, ``2.5``: any JSON value but null); ``echo_key``:
    plant the caller's bearer token in every response (``x-request-id``, an ``x-ratelimit-*``
    header, error messages, and ``" key=<token>"`` at the end of each answer), to prove a client
    never stores its key; ``chunk_delay_s``: seconds between the events of a streamed answer
    (0: as fast as the socket takes them); ``answers``: answer texts by content — a request
    whose last user message contains a key (the first that matches, in order) is answered
    with its text instead of the echo (e.g. a judge's verdict ``'{"verdict": "pass"}'``),
    every time, after any scripted fault; ``batch_complete_after``: a batch in progress
    completes at its N-th poll (None: only when :attr:`batches` says so); ``usage``: fields
    sent in every answer's ``usage`` instead of the made ones, whatever their value (e.g.
    ``{"prompt_tokens": -10**9}``, ``{"output_tokens": 10**12}`` for the Responses API): a
    server that misreports; ``huge_bytes``: the size of the text of ``"huge"`` and
    ``"gzip_bomb"`` answers (48 MiB); ``port``: 0 picks a free port.

    It answers Chat Completions and the Responses API, whole or streamed (``stream: true``), with
    every kind of answer: ``n`` distinct choices, tool calls (forced by ``tool_choice``, or
    scripted as ``"tool_call"``), structured outputs fitting the requested schema (scripted
    ``"bad_json"``: cut in half), refusals (``"refusal"``), logprobs when asked for, reasoning
    tokens and summaries; see :mod:`promptgrid.testing.made` for the exact values. Its Files
    and Batch APIs (:attr:`batches`, :mod:`promptgrid.testing.batch`) take request files and
    run batches as a test directs: completed, expired, cancelled, failed, partly answered.
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        latency_s: float = 0.0,
        fault_rates: dict[str, float] | None = None,
        seed: int = 0,
        api_keys: Iterable[str] | None = None,
        retry_after_s: float | None = 1.0,
        stall_s: float = 30.0,
        model_suffix: str = "",
        bad_retry_after: str = "-5",
        bad_usage: Any = "n/a",
        echo_key: bool = False,
        chunk_delay_s: float = 0.0,
        answers: dict[str, str] | None = None,
        batch_complete_after: int | None = None,
        usage: dict[str, Any] | None = None,
        huge_bytes: int = 48 * 1024 * 1024,
        port: int = 0,
    ) -> None:
        self._core = _Core(
            rpm=rpm,
            tpm=tpm,
            latency_s=latency_s,
            fault_rates=fault_rates,
            seed=seed,
            api_keys=api_keys,
            retry_after_s=retry_after_s,
            stall_s=stall_s,
            model_suffix=model_suffix,
            bad_retry_after=bad_retry_after,
            bad_usage=bad_usage,
            echo_key=echo_key,
            chunk_delay_s=chunk_delay_s,
            answers=answers or {},
            batch_complete_after=batch_complete_after,
            usage=usage or {},
            huge_bytes=huge_bytes,
        )
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url``: ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def batches(self) -> BatchControls:
        """Its batches and files, as a test steers them (see
        :mod:`promptgrid.testing.batch`)."""
        return BatchControls(self._core.batches)

    def start(self) -> FaultServer:
        """Bind and start serving; returns once the server is listening."""
        if self._thread is not None:
            raise RuntimeError("FaultServer already started")
        ready = threading.Event()

        async def main() -> None:
            try:
                runner, self.port = await listen(self._core, self.port)
            except BaseException as exc:  # reported to start()'s caller, on its own thread
                self._error = exc
                ready.set()
                return
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await self._stop.wait()
            await close(self._core, runner)

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="promptgrid-fault-server", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving (stalled requests are cancelled; takes well under a second)."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)
        self._thread = self._loop = self._stop = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _act(self, action: str, data: Any = None) -> Any:
        return self._core.act(action, data)
