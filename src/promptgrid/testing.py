"""A local OpenAI-compatible *fault server* for tests and benchmarks.

:class:`FaultServer` answers ``POST /v1/chat/completions`` over a real loopback socket the way
OpenAI does, so the real ``openai`` SDK (and promptgrid on top of it) can be driven end to end:

* answers are deterministic and name their request: ``"echo: " + <last user message>``, with
  ``usage`` estimated as ``characters // 4 + 1``;
* per-API-key request (``rpm``) and token (``tpm``) buckets that start full and refill continuously
  at ``limit / 60`` per second, charging ``prompt + max_tokens * n`` tokens up front; a request
  the buckets cannot cover gets OpenAI's 429 (``retry-after``, ``retry-after-ms``) and consumes
  nothing. Every response carries the ``x-ratelimit-*`` headers of the configured limits;
* faults, scripted (:meth:`FaultServer.script`, :meth:`FaultServer.script_for`) or drawn at
  seeded rates (``fault_rates``): an HTTP status (``"503"``, ``"429"``, ...), ``"quota"``,
  ``"drop"`` (connection closed, no response), ``"malformed"`` (200 with broken JSON),
  ``"truncated"`` (``finish_reason`` null, content cut in half) and ``"stall"`` (held for
  ``stall_s``). Injected faults replace normal processing: they neither check nor charge buckets;
* counters for assertions (:meth:`FaultServer.stats`), also served, with control endpoints, over
  HTTP (``GET /_pg/stats``, ``POST /_pg/script``, ``POST /_pg/config``, ``POST /_pg/reset``).

``FaultServer`` runs on its own thread and event loop, so ``with FaultServer() as s:`` works in sync
and async tests alike. For benchmarks, ``python -m promptgrid.testing --port 0 ...`` (or
:func:`spawn_fault_server`) runs it in a separate process and prints ``READY <base_url>``.
This module depends on aiohttp and the standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web

__all__ = ["FAULTS", "FaultServer", "RemoteFaultServer", "go_duration", "spawn_fault_server"]

#: Fault names besides HTTP statuses (any ``"400"``..``"599"`` is also accepted; ``"200"`` = ok).
FAULTS = frozenset({"ok", "quota", "drop", "malformed", "truncated", "stall"})
_DEFAULTS: dict[str, Any] = dict(
    rpm=None, tpm=None, latency_s=0.0, fault_rates={}, seed=0, api_keys=None,
    retry_after_s=1.0, stall_s=30.0, model_suffix="",
)  # fmt: skip
_ERRORS: dict[int, tuple[str | None, str]] = {  # status -> (code, message); type from the status
    400: (None, "Invalid request."),
    401: ("invalid_api_key", "Incorrect API key provided."),
    403: ("unsupported_country_region_territory", "Country, region, or territory not supported."),
    404: ("model_not_found", "The model does not exist or you do not have access to it."),
    408: ("timeout", "Request timed out."),
    409: ("conflict", "Conflict."),
    500: (None, "The server had an error while processing your request. Sorry about that!"),
    503: (None, "The engine is currently overloaded, please try again later."),
}
_QUOTA = "You exceeded your current quota, please check your plan and billing details."
_MALFORMED = b'{"id": "chatcmpl-1", "choices": ['
_FIVE_XX = ("500", "502", "503")


def go_duration(seconds: float) -> str:
    """Format ``seconds`` like Go's ``time.Duration`` (OpenAI's reset headers): ``"12ms"``,
    ``"1s"``, ``"6m0s"``, ``"1m30.5s"``; millisecond precision, rounded up."""
    ms = math.ceil(round(seconds * 1000, 6))
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + secs + "s"


def _check_fault(name: str) -> str:
    if name in FAULTS or (name.isdigit() and 400 <= int(name) <= 599):
        return name
    if name == "200":
        return "ok"
    raise ValueError(f"unknown fault {name!r}: use an HTTP status or one of {sorted(FAULTS)}")


def _error(
    status: int, message: str | None = None, type_: str | None = None, code: str | None = None
) -> dict[str, Any]:
    dcode, dmessage = _ERRORS.get(status, (None, f"HTTP {status}."))
    dtype = "server_error" if status >= 500 else "invalid_request_error"
    err = {"message": message or f"{dmessage} (promptgrid FaultServer)", "type": type_ or dtype}
    return {"error": {**err, "param": None, "code": code or dcode}}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class _Bucket:
    """A token bucket that starts full and refills continuously at ``limit / 60`` per second."""

    __slots__ = ("level", "limit", "stamp")

    def __init__(self, limit: int, now: float) -> None:
        self.limit, self.level, self.stamp = limit, float(limit), now

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.stamp) * self.limit / 60.0)
        self.stamp = now

    def wait(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount``: 0 if it does, inf if it never can."""
        if amount > self.limit:
            return math.inf
        return max(0.0, (amount - self.level) * 60.0 / self.limit)

    def headers(self, kind: str, h: dict[str, str]) -> None:
        h[f"x-ratelimit-limit-{kind}"] = str(self.limit)
        h[f"x-ratelimit-remaining-{kind}"] = str(int(self.level))
        h[f"x-ratelimit-reset-{kind}"] = go_duration((self.limit - self.level) * 60.0 / self.limit)


class _Core:
    """Configuration, scripts, buckets and counters; the aiohttp handlers live here too.

    State is guarded by a lock so the Python API can be used from any thread."""

    def __init__(self, **config: Any) -> None:
        self._lock = threading.Lock()
        self._sleepers: set[asyncio.Task[Any]] = set()
        self._n = 0
        self.cfg: dict[str, Any] = dict(_DEFAULTS)
        self.configure(**config)
        self.reset()

    # -- control -------------------------------------------------------------------------------
    def configure(self, **changes: Any) -> dict[str, Any]:
        unknown = set(changes) - _DEFAULTS.keys()
        if unknown:
            raise TypeError(f"unknown FaultServer settings: {sorted(unknown)}")
        if "fault_rates" in changes:
            rates = {
                k if k == "5xx" else _check_fault(k): float(v)
                for k, v in (changes["fault_rates"] or {}).items()
            }
            if any(not 0 <= v <= 1 for v in rates.values()) or sum(rates.values()) > 1 + 1e-9:
                raise ValueError(f"fault_rates must be in [0, 1] and sum to <= 1: {rates}")
            changes["fault_rates"] = rates
        for k in ("rpm", "tpm"):
            if k in changes:
                changes[k] = int(changes[k]) if changes[k] else None
        if changes.get("api_keys") is not None:
            changes["api_keys"] = frozenset(changes["api_keys"])
        with self._lock:
            self.cfg.update(changes)
            if {"rpm", "tpm"} & set(changes):
                self._buckets: dict[str, tuple[_Bucket | None, _Bucket | None]] = {}
            if "seed" in changes:
                self._rng = random.Random(self.cfg["seed"])
            return self.config()

    def config(self) -> dict[str, Any]:
        """The current settings as JSON-compatible values."""
        cfg = dict(self.cfg)
        cfg["api_keys"] = sorted(cfg["api_keys"]) if cfg["api_keys"] is not None else None
        return cfg

    def act(self, action: str, data: Any = None) -> Any:
        """Apply a control action (for the Python API and the ``/_pg/{action}`` endpoints)."""
        if action == "script":  # data: [faults] or {"faults": [...], "by_content": {sub: [...]}}
            data = data if isinstance(data, dict) else {"faults": data}
            faults = [_check_fault(str(f)) for f in data.get("faults") or []]
            by_content = {
                str(sub): [_check_fault(str(f)) for f in fs]
                for sub, fs in (data.get("by_content") or {}).items()
            }
            with self._lock:
                self._script.extend(faults)
                for sub, fs in by_content.items():
                    self._by_content.setdefault(sub, deque()).extend(fs)
        elif action == "config" and data:
            self.configure(**data)
        elif action == "reset":
            self.reset_stats() if (data or {}).get("stats_only") else self.reset()
        elif action not in ("stats", "config"):
            raise KeyError(action)
        return self.stats() if action == "stats" else self.config()

    def reset_stats(self) -> None:
        with self._lock:
            self._requests = 0
            self._outcomes: Counter[str] = Counter()
            self._keys: Counter[str] = Counter()
            self._injected: Counter[str] = Counter()
            self._limited: Counter[str] = Counter()
            self._answered: Counter[str] = Counter()

    def reset(self) -> None:
        self.reset_stats()
        with self._lock:
            self._script: deque[str] = deque()
            self._by_content: dict[str, deque[str]] = {}
            self._buckets = {}
            self._rng = random.Random(self.cfg["seed"])

    def stats(self) -> dict[str, Any]:
        with self._lock:
            in_flight = self._requests - self._outcomes.total()
            return {
                "requests": self._requests,
                "in_flight": in_flight,
                "by_outcome": self._outcomes.copy(),
                "by_key": self._keys.copy(),
                "injected": self._injected.copy(),
                "rate_limited": self._limited.copy(),
                "answered": self._answered.copy(),
                "pending_script": len(self._script),
            }

    # -- request path --------------------------------------------------------------------------
    def _record(self, outcome: str, answered: str | None = None) -> None:
        with self._lock:
            self._outcomes[outcome] += 1
            if answered is not None:
                self._answered[answered] += 1

    def _next_fault(self, last: str) -> str | None:  # under the lock
        for sub, faults in self._by_content.items():
            if faults and sub in last:
                return faults.popleft()
        if self._script:
            return self._script.popleft()
        rates = self.cfg["fault_rates"]
        if rates:
            r, acc = self._rng.random(), 0.0
            for name, p in rates.items():
                acc += p
                if r < acc:
                    return self._rng.choice(_FIVE_XX) if name == "5xx" else name
        return None

    def _decide(
        self, key: str, last: str, model: str, cost: int
    ) -> tuple[str | None, dict[str, Any] | None, dict[str, str]]:
        """Under the lock: returns (fault or status, its error body if built here, headers)."""
        now = time.monotonic()
        h: dict[str, str] = {}
        self._n += 1
        h["x-request-id"] = f"req_{self._n:012x}"
        self._requests += 1
        self._keys[key] += 1
        keys = self.cfg["api_keys"]
        if keys is not None and key not in keys:
            msg = f"Incorrect API key provided: {key[:5]}****."
            return "401", _error(401, msg, code="invalid_api_key"), h
        rpm, tpm = self.cfg["rpm"], self.cfg["tpm"]
        if rpm is None and tpm is None:
            buckets: tuple[_Bucket | None, _Bucket | None] = (None, None)
        elif (buckets := self._buckets.get(key)) is None:  # type: ignore[assignment]
            buckets = (_Bucket(rpm, now) if rpm else None, _Bucket(tpm, now) if tpm else None)
            self._buckets[key] = buckets
        for b in buckets:
            if b is not None:
                b.refill(now)
        fault, body = self._next_fault(last), None
        if fault is not None and fault != "ok":
            self._injected[fault] += 1
        else:
            fault = None
            for kind, b, amount in (("requests", buckets[0], 1), ("tokens", buckets[1], cost)):
                if b is None or (wait := b.wait(amount)) == 0:
                    continue
                self._limited[kind] += 1
                short, unit = ("RPM", "requests") if kind == "requests" else ("TPM", "tokens")
                where = f"{model} in organization org-promptgrid on {unit} per min ({short})"
                if wait == math.inf:
                    msg = (
                        f"Request too large for {where}: Limit {b.limit}, Requested {amount}. "
                        "The input or output tokens must be reduced in order to run."
                    )
                else:
                    msg = (
                        f"Rate limit reached for {where}: Limit {b.limit}, "
                        f"Used {b.limit - int(b.level)}, Requested {amount}. "
                        f"Please try again in {go_duration(wait)}."
                    )
                    h["retry-after"] = str(max(1, math.ceil(wait)))
                    h["retry-after-ms"] = str(math.ceil(wait * 1000))
                fault, body = "429", _error(429, msg, kind, "rate_limit_exceeded")
                break
            else:  # both buckets cover the request: charge it up front
                if buckets[0] is not None:
                    buckets[0].level -= 1
                if buckets[1] is not None:
                    buckets[1].level -= cost
        if buckets[0] is not None:
            buckets[0].headers("requests", h)
        if buckets[1] is not None:
            buckets[1].headers("tokens", h)
        return fault, body, h

    async def _sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sleepers.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._sleepers.discard(task)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``."""
        try:
            body = json.loads(await request.read())
            messages = body.get("messages") or []
            texts = [_text(m.get("content")) for m in messages]
            users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
            last = users[-1] if users else ""
            model, n = str(body.get("model", "")), int(body.get("n") or 1)
            max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        except (ValueError, TypeError, AttributeError) as exc:
            return _json(400, _error(400, f"Could not parse the request body: {exc}"), {})
        prompt_tokens = sum(map(len, texts)) // 4 + 1
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else auth
        with self._lock:
            fault, error, h = self._decide(key, last, model, prompt_tokens + max_tokens * n)
        if error is not None:  # a bad key (401) or buckets short (429)
            self._record(fault or "")
            return _json(int(fault or 0), error, h)
        if fault == "drop":
            self._record("drop")
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        if fault == "quota":
            self._record("quota")
            return _json(429, _error(429, _QUOTA, "insufficient_quota", "insufficient_quota"), h)
        if fault is not None and fault.isdigit():
            self._record(fault)
            if fault == "429":
                ra = self.cfg["retry_after_s"]
                if ra is not None:
                    h["retry-after"] = str(math.ceil(ra))
                    h["retry-after-ms"] = str(round(ra * 1000))
                msg = (
                    f"Rate limit reached for {model} in organization org-promptgrid on requests "
                    "per min (RPM) (injected fault)."
                )
                return _json(429, _error(429, msg, "requests", "rate_limit_exceeded"), h)
            return _json(int(fault), _error(int(fault)), h)
        delay = self.cfg["stall_s"] if fault == "stall" else self.cfg["latency_s"]
        if delay > 0:
            try:
                await self._sleep(delay)
            except asyncio.CancelledError:  # client went away, or the server is stopping
                self._record("stall" if fault == "stall" else "cancelled")
                raise
        if fault == "malformed":
            self._record("malformed")
            h["Content-Type"] = "application/json"
            return web.Response(body=_MALFORMED, headers=h)
        text, finish = "echo: " + last, "stop"
        if fault == "truncated":
            text, finish = text[: len(text) // 2], None
        self._record(
            "truncated" if fault == "truncated" else "200", None if fault == "truncated" else last
        )
        completion_tokens = (len(text) // 4 + 1) * n
        return _json(
            200,
            {
                "id": f"chatcmpl-{h['x-request-id'][4:]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model + self.cfg["model_suffix"],
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                    for i in range(n)
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
                "system_fingerprint": "fp_promptgrid",
            },
            h,
        )

    async def control(self, request: web.Request) -> web.StreamResponse:
        """``GET /_pg/stats``, ``GET|POST /_pg/config``, ``POST /_pg/script|reset``."""
        action = request.match_info["action"]
        try:
            data = await request.json() if request.can_read_body else None
            return _json(200, self.act(action, data), {})
        except KeyError:
            return _json(404, _error(404, f"unknown control action {action!r}"), {})
        except (ValueError, TypeError, AttributeError) as exc:
            return _json(400, _error(400, str(exc)), {})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.completions)
        app.router.add_route("*", "/_pg/{action}", self.control)
        return app

    async def open(self, port: int) -> tuple[web.AppRunner, int]:
        """Start serving on 127.0.0.1:``port`` (0 = any free port); returns the runner and port."""
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            await web.SockSite(runner, sock, backlog=1024).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        return runner, sock.getsockname()[1]

    async def close(self, runner: web.AppRunner) -> None:
        """Cancel sleeping (stalled or delayed) handlers, then stop the server."""
        for task in list(self._sleepers):
            task.cancel()
        await runner.cleanup()


def _json(status: int, payload: Any, headers: dict[str, str]) -> web.Response:
    headers["Content-Type"] = "application/json"
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=headers)


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
    ``{"429": 0.1, "5xx": 0.15, "drop": 0.02}`` drawn from ``random.Random(seed)``;
    ``api_keys``: allowed bearer tokens (others get 401); ``retry_after_s``: ``retry-after`` of
    injected 429s; ``stall_s``: how long ``"stall"`` holds a request; ``model_suffix``: appended
    to the answered ``model`` (e.g. ``"-2024-07-18"``); ``port``: 0 picks a free port.
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

    def start(self) -> FaultServer:
        """Bind and start serving; returns once the server is listening."""
        if self._thread is not None:
            raise RuntimeError("FaultServer already started")
        ready = threading.Event()

        async def main() -> None:
            try:
                runner, self.port = await self._core.open(self.port)
            except BaseException as exc:
                self._error = exc
                ready.set()
                return
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await self._stop.wait()
            await self._core.close(runner)

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


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only


class RemoteFaultServer(_Controls):
    """Steers a fault server in another process over its ``/_pg/*`` control endpoints."""

    def __init__(self, base_url: str, process: subprocess.Popen[str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.process = process
        self._root = self.base_url.removesuffix("/v1")

    def _act(self, action: str, data: Any = None) -> Any:
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(
            f"{self._root}/_pg/{action}", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with _NO_PROXY.open(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                raise ValueError(json.loads(exc.read())["error"]["message"]) from None


@contextlib.contextmanager
def spawn_fault_server(
    *, port: int = 0, startup_timeout: float = 10.0, **config: Any
) -> Iterator[RemoteFaultServer]:
    """Run a fault server in a child process (settings as :class:`FaultServer`); yields a
    :class:`RemoteFaultServer` and terminates the process (SIGTERM) on exit."""
    config = {k: sorted(v) if k == "api_keys" and v is not None else v for k, v in config.items()}
    # Run this file directly (not ``-m promptgrid.testing``) so the child skips the package import.
    code = "import runpy, sys; p = sys.argv[0] = sys.argv.pop(1); runpy.run_path(p, {}, '__main__')"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            os.path.abspath(__file__),
            "--port",
            str(port),
            "--config",
            json.dumps(config),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=startup_timeout)
        except queue.Empty:
            raise RuntimeError("fault server did not start in time") from None
        if not line.startswith("READY "):
            raise RuntimeError(f"fault server failed to start (exit {proc.wait(5)})")
        yield RemoteFaultServer(line.split()[1], proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    """Command line: serve until SIGTERM/SIGINT, after printing ``READY <base_url>``."""
    p = argparse.ArgumentParser(
        prog="python -m promptgrid.testing",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--config", type=json.loads, default={}, help="JSON object of settings")
    p.add_argument("--rpm", type=int, help="requests per minute per key (0: unlimited)")
    p.add_argument("--tpm", type=int, help="tokens per minute per key (0: unlimited)")
    p.add_argument("--latency", type=float, dest="latency_s", help="seconds before each answer")
    p.add_argument("--fault-rates", type=json.loads, dest="fault_rates", help='{"429": 0.1}')
    p.add_argument("--seed", type=int)
    p.add_argument("--api-keys", type=lambda s: s.split(","), dest="api_keys")
    p.add_argument("--retry-after", type=float, dest="retry_after_s")
    p.add_argument("--stall", type=float, dest="stall_s")
    p.add_argument("--model-suffix", dest="model_suffix")
    args = vars(p.parse_args(argv))
    port, config = args.pop("port"), args.pop("config")
    config.update({k: v for k, v in args.items() if v is not None})
    core = _Core(**config)

    async def serve() -> None:
        runner, bound = await core.open(port)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        print(f"READY http://127.0.0.1:{bound}/v1", flush=True)
        try:
            await stop.wait()
        finally:
            await core.close(runner)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
