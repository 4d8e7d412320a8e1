"""The fault server's state and request handlers, independent of how it is run.

:class:`_Core` holds the settings, the fault scripts, the per-key buckets and the counters, and
answers ``POST /v1/chat/completions``, ``POST /v1/responses`` (and the same paths as Azure OpenAI
serves them: ``/openai/deployments/<deployment>/chat/completions``, ``/openai/responses``,
``/openai/v1/...``; an ``api-key`` header works as the bearer token) and the ``/_pg/*`` control
endpoints. Answers are whole JSON bodies, or Server-Sent Events when the request streams. The
in-process
:class:`~promptgrid.testing.FaultServer` and the command line (a child process) both serve one.
State sits behind a thread lock because tests steer a server from their own thread while its
loop runs on another.

A request's fate is decided once, under the lock, in arrival order: a bad key (401), else the next
scripted or drawn fault, else the buckets (429 or charged). Only then does the handler sleep
(``latency_s`` or ``stall_s``), so a script lines up with requests as they arrive, not as they
finish.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections import Counter, deque
from typing import Any

from aiohttp import web

from .answers import (
    ANSWER_KINDS,
    BROKEN,
    DEEP_JSON,
    ERROR_STATUS,
    FLOODS,
    Ask,
    broken_body,
    check_fault,
    error_body,
    injected_error,
    plant_key,
    read_ask,
    respond,
)
from .batch import Batches
from .buckets import _KeyBuckets
from .floods import MARK, gzipped, pieces
from .made import make
from .settings import DEFAULTS, validate
from .shapes import chat_completion, chat_stream, every_usage_field, response, response_stream

_FIVE_XX = ("500", "502", "503")  # what a "5xx" rate draws from


class _Core:
    """Configuration, scripts, buckets and counters, and the aiohttp handlers that use them."""

    def __init__(self, **config: Any) -> None:
        self._lock = threading.Lock()
        self._sleepers: set[asyncio.Task[Any]] = set()
        self._n = 0  # never reset: request ids stay unique for the server's life
        self.cfg: dict[str, Any] = dict(DEFAULTS)
        self.configure(**config)
        self.reset()
        self.batches = Batches(self)

    # -- control -------------------------------------------------------------------------------
    def configure(self, **changes: Any) -> dict[str, Any]:
        """Validate and apply settings; returns them all."""
        changes = validate(changes)
        with self._lock:
            self.cfg.update(changes)
            if {"rpm", "tpm"} & set(changes):
                self._buckets: dict[str, _KeyBuckets] = {}
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
            faults = [check_fault(str(f)) for f in data.get("faults") or []]
            by_content = {
                str(sub): [check_fault(str(f)) for f in fs]
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
        elif action == "batches":  # data: {"do": "complete", ...keywords}; returns the result
            return self.batches.act(dict(data or {}))
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
            return {
                "requests": self._requests,
                "in_flight": self._requests - self._outcomes.total(),
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
    ) -> tuple[str | None, dict[str, Any] | None, dict[str, str], int]:
        """Under the lock: (fault or status, its error body if decided here, headers, the
        request's number)."""
        now = time.monotonic()
        self._n += 1
        h = {"x-request-id": f"req_{self._n:012x}"}
        self._requests += 1
        self._keys[key] += 1
        keys = self.cfg["api_keys"]
        if keys is not None and key not in keys:
            msg = f"Incorrect API key provided: {key[:5]}****."
            return "401", error_body(401, msg, code="invalid_api_key"), h, self._n
        buckets = None
        if self.cfg["rpm"] or self.cfg["tpm"]:
            if (buckets := self._buckets.get(key)) is None:
                buckets = self._buckets[key] = _KeyBuckets(self.cfg["rpm"], self.cfg["tpm"], now)
            buckets.refill(now)
        fault, body = self._next_fault(last), None
        if fault is not None and fault != "ok":
            self._injected[fault] += 1
        else:
            fault = None
            refusal = buckets.admit(cost, model) if buckets is not None else None
            if refusal is not None:
                self._limited[refusal.kind] += 1
                if refusal.wait != math.inf:  # too large never fits: no point saying when
                    h["retry-after"] = str(max(1, math.ceil(refusal.wait)))
                    h["retry-after-ms"] = str(math.ceil(refusal.wait * 1000))
                fault = "429"
                body = error_body(429, refusal.message, refusal.kind, "rate_limit_exceeded")
        if buckets is not None:
            buckets.headers(h)
        return fault, body, h, self._n

    async def _sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sleepers.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._sleepers.discard(task)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions`` (and Azure's paths to it)."""
        return await self._handle(request, "chat")

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/responses`` (and Azure's paths to it)."""
        return await self._handle(request, "responses")

    async def _handle(self, request: web.Request, api: str) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else auth or request.headers.get("api-key", "")
        echo = key if self.cfg["echo_key"] else None
        try:
            ask = read_ask(await request.read(), api)
        except (ValueError, TypeError, AttributeError) as exc:
            reason = f"Could not parse the request body: {exc}"
            return respond(400, error_body(400, reason), {}, echo)
        with self._lock:
            fault, error, h, number = self._decide(key, ask.last, ask.model, ask.cost)
        if error is not None:  # a bad key (401) or buckets short (429)
            self._record(fault or "")
            return respond(int(fault or 0), error, h, echo)
        if fault == "drop" or (fault == "stream_cut" and not ask.stream):
            self._record("drop" if fault == "drop" else fault)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        if fault is not None and (fault.isdigit() or fault in ERROR_STATUS):
            self._record(fault)
            status = ERROR_STATUS[fault] if not fault.isdigit() else int(fault)
            return respond(status, injected_error(fault, ask.model, self.cfg, h), h, echo)
        delay = self.cfg["stall_s"] if fault == "stall" else self.cfg["latency_s"]
        if delay > 0:
            try:
                await self._sleep(delay)
            except asyncio.CancelledError:  # client went away, or the server is stopping
                self._record("stall" if fault == "stall" else "cancelled")
                raise
        if fault in FLOODS:
            return await self._flood(request, ask, fault, h, echo, number)
        if ask.stream and (fault not in BROKEN or fault == "deep_body"):
            return await self._stream(request, ask, fault, h, echo, number)
        return self._answer(ask, fault, h, echo, number)

    def _made(self, ask: Ask, fault: str | None, echo: str | None, number: int) -> Any:
        kind = fault if fault in ANSWER_KINDS or fault == "truncated" else None
        scripted = next((t for sub, t in self.cfg["answers"].items() if sub in ask.last), None)
        made = make(
            ask.body, ask.api, ask.last, ask.n, ask.prompt_tokens, kind, number, echo, scripted
        )
        made.usage = (
            every_usage_field(ask.api, self.cfg["bad_usage"])
            if fault == "bad_usage"
            else self.cfg["usage"]
        )
        return made

    def answer_body(
        self, ask: Ask, fault: str | None, echo: str | None, number: int, request_id: str
    ) -> dict[str, Any]:
        """The JSON of a good answer to ``ask`` (of the kind ``fault`` names, if an answer
        kind), as Chat Completions or the Responses API sends it: online answers and a batch's
        output lines alike."""
        made = self._made(ask, fault, echo, number)
        model = ask.model + self.cfg["model_suffix"]
        if ask.api == "responses":
            return response(made, request_id=request_id, model=model)
        return chat_completion(made, request_id=request_id, model=model)

    def next_number(self) -> int:
        """A new request number (request ids stay unique for the server's life)."""
        with self._lock:
            self._n += 1
            return self._n

    def batch_fault(self, last: str) -> str | None:
        """The fault scripted for a batch's request whose last user message is ``last``
        (``script_for`` scripts only: a batch's lines do not take the general script)."""
        with self._lock:
            for sub, faults in self._by_content.items():
                if faults and sub in last:
                    fault = faults.popleft()
                    if fault != "ok":
                        self._injected[fault] += 1
                        return fault
                    return None
        return None

    def _answer(
        self, ask: Ask, fault: str | None, h: dict[str, str], echo: str | None, number: int
    ) -> web.Response:
        """A 200: the answer (of its kind, or a scripted text), ``"truncated"``, or a broken
        body."""
        answer = self.answer_body(ask, fault, echo, number, h["x-request-id"])
        if fault is not None and fault in BROKEN:
            self._record(fault)
            return respond(200, broken_body(fault, answer), h, echo)
        self._record(*(("truncated", None) if fault == "truncated" else ("200", ask.last)))
        return respond(200, answer, h, echo)

    async def _stream(
        self,
        request: web.Request,
        ask: Ask,
        fault: str | None,
        h: dict[str, str],
        echo: str | None,
        number: int,
    ) -> web.StreamResponse:
        """A 200 streamed as Server-Sent Events; ``"stream_cut"`` closes the connection after
        the first event carrying output, ``"truncated"`` ends without the final event,
        ``"deep_body"`` sends one event nested 2,000 deep."""
        made = self._made(ask, fault, echo, number)
        model = ask.model + self.cfg["model_suffix"]
        request_id = h["x-request-id"]
        if fault == "deep_body":
            events = [(b"data: " + DEEP_JSON + b"\n\n", False)]
        elif ask.api == "responses":
            events = response_stream(made, request_id=request_id, model=model)
        else:
            usage = bool((ask.body.get("stream_options") or {}).get("include_usage"))
            events = chat_stream(made, request_id=request_id, model=model, usage=usage)
        plant_key(h, echo)
        response = web.StreamResponse(status=200, headers=h)
        response.content_type = "text/event-stream"
        await response.prepare(request)
        gap = self.cfg["chunk_delay_s"]
        for data, output in events:
            await response.write(data)
            if output and fault == "stream_cut":
                self._record("stream_cut")
                if request.transport is not None:
                    request.transport.abort()
                return response
            if gap > 0:
                await self._sleep(gap)
        await response.write_eof()
        broken = fault in ("truncated", "deep_body")
        self._record(*((fault, None) if broken and fault else ("200", ask.last)))
        return response

    async def _flood(
        self,
        request: web.Request,
        ask: Ask,
        fault: str,
        h: dict[str, str],
        echo: str | None,
        number: int,
    ) -> web.StreamResponse:
        """A 200 too large to hold (:mod:`.floods`): written piece by piece until it ends, or
        until the client goes away."""
        made = make(ask.body, ask.api, ask.last, ask.n, ask.prompt_tokens, None, number, None,
                    MARK)  # fmt: skip
        made.usage = self.cfg["usage"]
        model, request_id = ask.model + self.cfg["model_suffix"], h["x-request-id"]
        if not ask.stream:
            shaped: Any = json.dumps(
                response(made, request_id=request_id, model=model) if ask.api == "responses"
                else chat_completion(made, request_id=request_id, model=model)
            ).encode()  # fmt: skip
        elif ask.api == "responses":
            shaped = [data for data, _ in response_stream(made, request_id=request_id,
                                                          model=model)]  # fmt: skip
        else:
            shaped = [data for data, _ in chat_stream(made, request_id=request_id, model=model,
                                                      usage=True)]  # fmt: skip
        parts = pieces(shaped, None if fault == "endless" else self.cfg["huge_bytes"])
        plant_key(h, echo)
        response_ = web.StreamResponse(status=200, headers=h)
        response_.content_type = "text/event-stream" if ask.stream else "application/json"
        if fault == "gzip_bomb":
            parts = gzipped(parts)
            response_.headers["Content-Encoding"] = "gzip"
        await response_.prepare(request)
        try:
            for part in parts:
                await response_.write(part)
            await response_.write_eof()
        except (ConnectionError, RuntimeError):  # the client stopped reading: as it should
            self._record(f"{fault}_cut")
            return response_
        except asyncio.CancelledError:  # the client left (or the server is stopping)
            self._record(f"{fault}_cut")
            raise
        self._record(fault)
        return response_

    async def control(self, request: web.Request) -> web.StreamResponse:
        """``GET /_pg/stats``, ``GET|POST /_pg/config``, ``POST /_pg/script|reset``."""
        action = request.match_info["action"]
        try:
            data = await request.json() if request.can_read_body else None
            return respond(200, self.act(action, data), {})
        except KeyError:
            return respond(404, error_body(404, f"unknown control action {action!r}"), {})
        except (ValueError, TypeError, AttributeError) as exc:
            return respond(400, error_body(400, str(exc)), {})

    # -- serving -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application: the completions endpoint and the control endpoints."""
        app = web.Application(client_max_size=600 * 1024 * 1024)  # batch files: up to 512 MB
        for prefix in ("/v1", "/openai/v1", "/openai/deployments/{deployment}", "/openai"):
            app.router.add_post(f"{prefix}/chat/completions", self.completions)
            app.router.add_post(f"{prefix}/responses", self.responses)
        self.batches.routes(app, ("/v1", "/openai/v1", "/openai"))
        app.router.add_route("*", "/_pg/{action}", self.control)
        return app

    def wake(self) -> None:
        """Cancel the handlers sleeping in ``latency_s`` or a stall, so a stop is prompt."""
        for task in list(self._sleepers):
            task.cancel()
