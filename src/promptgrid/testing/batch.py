"""The fault server's Files and Batch APIs: batches that progress only when a test says so.

Endpoints (under ``/v1``, and Azure's ``/openai`` and ``/openai/v1``), in OpenAI's shapes:

- ``POST /files`` (multipart: ``file``, ``purpose``), ``GET /files`` (``purpose``, ``order``,
  ``limit``, ``after``), ``GET /files/{id}``, ``GET /files/{id}/content``,
  ``DELETE /files/{id}``;
- ``POST /batches`` (``input_file_id``, ``endpoint``, ``completion_window``, ``metadata``),
  ``GET /batches`` (``limit``, ``after``; newest first), ``GET /batches/{id}``,
  ``POST /batches/{id}/cancel``.

A batch is created ``validating``. Its file is checked later, as a provider does (JSON lines
with a ``custom_id`` unique in the file, ``method`` POST, ``url`` equal to the batch's
endpoint, a ``body``; at most :data:`MAX_LINES` lines): at its first poll (``GET
/batches/{id}``) it becomes ``failed`` (with ``errors``) or ``in_progress``; after that
nothing happens unless the test acts, through :class:`BatchControls` (``server.batches``):

- ``progress(id, done)``: the first ``done`` requests are answered (counts move);
- ``complete(id)``: every request is answered; ``completed``, with an output file and, for
  failed requests, an error file;
- ``expire(id, done=None)``: ``expired``: the answered ones in the output file, the rest in
  the error file as ``batch_expired``;
- a client's cancel makes it ``cancelling``; its next poll makes it ``cancelled`` with only
  the answered ones (the rest are in no file);
- ``fail(id, errors)``: ``failed`` validation, no files;
- the setting ``batch_complete_after`` (N): a batch in progress completes at its N-th poll.

A request of a batch is answered by the same code as an online request
(:meth:`Answerer.answer_body`), and takes the scripts of
``script_for``: an HTTP status puts an error line (``response.status_code`` and an error body)
in the error file (so do ``quota`` and ``error_surrogate``), an answer kind (``tool_call``,
``refusal``, ``bad_json``, ``surrogates``, ``bad_usage``, ``truncated``) shapes its answer,
``garbage`` gives a body of the wrong shape and ``deep_body`` one nested 2,000 deep. Output
lines are ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.

For crash tests, ``script(faults, op=...)`` fails the next Files/Batch API calls (an HTTP
status, a 429 with the ``retry_after_s`` setting's ``retry-after`` as online; or ``drop``: the
connection closed), and ``hook(op, info)`` is called before each call
(``op``: ``upload``, ``files.list``, ``content``, ``delete``, ``create``, ``list``,
``retrieve``, ``cancel``) and after it took effect (``op + ":done"``), on the server's thread;
returning ``"abort"`` closes the connection there — before: the call never happened; after:
it did, but its answer is lost. ``stats()`` counts uploads by file name, batches created by
their ``promptgrid_run``/``promptgrid_chunk`` metadata, and answers by ``custom_id``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from .answers import (
    ANSWER_KINDS,
    DEEP_JSON,
    ERROR_STATUS,
    Ask,
    ask_of,
    error_body,
    injected_error,
    respond,
)

_DEEP = "<deep_body>"  # stands for DEEP_JSON in an output line until it is written
_DEEP_MARK = json.dumps(_DEEP).encode()

__all__ = ["MAX_LINES", "Answerer", "BatchControls", "Batches"]

#: Requests a batch file may hold (OpenAI's limit).
MAX_LINES = 50_000
ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/responses", "/chat/completions", "/responses"})
_RUNNING = ("validating", "in_progress", "finalizing", "cancelling")
Hook = Callable[[str, Mapping[str, Any]], "str | None"]


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    number: int  # creation order (created_at ties within a second)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "file", "bytes": len(self.data),
            "created_at": self.created_at, "filename": self.filename, "purpose": self.purpose,
            "status": "processed", "status_details": None,
        }  # fmt: skip


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str]
    created_at: int
    number: int
    lines: list[tuple[int, int]]  # (start, end) of each request line in the input file
    problems: list[dict[str, Any]]
    status: str = "validating"
    done: int = 0  # requests answered so far, in file order
    output: list[bytes] = field(default_factory=list)
    errors_out: list[bytes] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    polls: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    stamps: dict[str, int] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.problems} if self.problems else None,
            "input_file_id": self.input_file_id, "completion_window": self.completion_window,
            "status": self.status, "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id, "created_at": self.created_at,
            "expires_at": self.created_at + 86400,
            **{f"{k}_at": v for k, v in self.stamps.items()},
            "request_counts": None if self.status == "failed" else {
                "total": len(self.lines), "completed": self.completed, "failed": self.failed,
            },
            "metadata": self.metadata or None,
        }  # fmt: skip


class Answerer(Protocol):
    """What the Files and Batch APIs need of the server's core (``core._Core``): its settings,
    request numbers, and the online path's answers, so a batch's request is answered by the
    same code as an online one. The core builds :class:`Batches` with itself; this module
    never imports the core."""

    cfg: dict[str, Any]

    def batch_fault(self, last: str) -> str | None:
        """The fault scripted for a request whose last user message is ``last``, if any."""
        ...

    def next_number(self) -> int:
        """A new request number."""
        ...

    def answer_body(
        self, ask: Ask, fault: str | None, echo: str | None, number: int, request_id: str
    ) -> dict[str, Any]:
        """The JSON of a good answer to ``ask`` (of the kind ``fault`` names)."""
        ...


class Batches:
    """The Files and Batch APIs of one fault server (see the module docstring)."""

    def __init__(self, core: Answerer) -> None:
        self.core = core
        self._lock = threading.RLock()
        self.hook: Hook | None = None
        self.reset()

    def reset(self) -> None:
        """Forget every file, batch, script and counter."""
        with self._lock:
            self.files: dict[str, _File] = {}
            self.batches: dict[str, _Batch] = {}
            self._script: deque[tuple[str | None, str]] = deque()
            self._n = 0
            self.uploads: Counter[str] = Counter()
            self.created: Counter[tuple[str, str]] = Counter()
            self.answered: Counter[str] = Counter()
            self.polls = 0
            self.calls: Counter[str] = Counter()

    # -- control ---------------------------------------------------------------------------
    def act(self, data: dict[str, Any]) -> Any:
        """A control action by name (``{"do": "complete", "batch_id": ...}``), for the HTTP
        control endpoint."""
        do = data.pop("do", None)
        controls = BatchControls(self)
        if do not in {"complete", "expire", "fail", "progress", "script", "stats", "ids"}:
            raise KeyError(f"batches:{do}")
        return getattr(controls, str(do))(**data)

    def _id(self, prefix: str) -> tuple[str, int]:
        self._n += 1
        return f"{prefix}-pg{self._n:08d}", self._n

    def _fault(self, op: str) -> str | None:
        with self._lock:
            self.calls[op] += 1
            for i, (wanted, fault) in enumerate(self._script):
                if wanted is None or wanted == op:
                    del self._script[i]
                    return None if fault == "ok" else fault
        return None

    def _call_hook(self, event: str, info: Mapping[str, Any]) -> bool:
        """Tell the hook; True if it wants the connection closed here."""
        hook = self.hook
        return hook is not None and hook(event, info) == "abort"

    async def _guard(
        self, request: web.Request, op: str, info: Mapping[str, Any]
    ) -> web.Response | None:
        """A scripted fault or a hook's abort for this call, else None (go on)."""
        if self._call_hook(op, info):
            return _abort(request)
        fault = self._fault(op)
        if fault is None:
            return None
        if fault == "drop":
            return _abort(request)
        status = fault if fault.isdigit() else "500"
        headers: dict[str, str] = {}
        return respond(int(status), injected_error(status, op, self.core.cfg, headers), headers)

    def _done(self, request: web.Request, op: str, info: Mapping[str, Any]) -> bool:
        return self._call_hook(f"{op}:done", info)

    # -- files -----------------------------------------------------------------------------
    async def upload(self, request: web.Request) -> web.Response:
        """``POST /files``."""
        form = await request.post()
        upload = form.get("file")
        purpose = str(form.get("purpose") or "")
        if not isinstance(upload, web.FileField):
            return respond(400, error_body(400, "'file' is required (multipart)"), {})
        info = {"filename": upload.filename, "purpose": purpose}
        refused = await self._guard(request, "upload", info)
        if refused is not None:
            return refused
        data = upload.file.read()
        if purpose not in ("batch", "batch_output", "fine-tune", "assistants", "user_data"):
            return respond(400, error_body(400, f"Invalid purpose {purpose!r}."), {})
        with self._lock:
            file_id, number = self._id("file")
            made = _File(file_id, upload.filename, purpose, data, int(time.time()), number)
            self.files[file_id] = made
            self.uploads[upload.filename] += 1
        if self._done(request, "upload", {**info, "id": file_id}):
            return _abort(request)
        return respond(200, made.json(), {})

    async def list_files(self, request: web.Request) -> web.Response:
        """``GET /files``."""
        refused = await self._guard(request, "files.list", dict(request.query))
        if refused is not None:
            return refused
        query = request.query
        with self._lock:
            found = [f for f in self.files.values()
                     if not query.get("purpose") or f.purpose == query["purpose"]]  # fmt: skip
        found.sort(key=lambda f: f.number, reverse=query.get("order", "desc") == "desc")
        page, more = _page(found, query.get("after"), int(query.get("limit") or 10_000))
        return respond(200, _list([f.json() for f in page], more), {})

    async def get_file(self, request: web.Request) -> web.Response:
        """``GET /files/{id}``."""
        made = self.files.get(request.match_info["file_id"])
        if made is None:
            return respond(404, error_body(404, "No such File object."), {})
        return respond(200, made.json(), {})

    async def content(self, request: web.Request) -> web.StreamResponse:
        """``GET /files/{id}/content``."""
        file_id = request.match_info["file_id"]
        refused = await self._guard(request, "content", {"id": file_id})
        if refused is not None:
            return refused
        made = self.files.get(file_id)
        if made is None:
            return respond(404, error_body(404, "No such File object."), {})
        if self._done(request, "content", {"id": file_id}):
            return _abort(request)
        return web.Response(body=made.data, content_type="application/octet-stream")

    async def delete(self, request: web.Request) -> web.Response:
        """``DELETE /files/{id}``."""
        file_id = request.match_info["file_id"]
        refused = await self._guard(request, "delete", {"id": file_id})
        if refused is not None:
            return refused
        with self._lock:
            gone = self.files.pop(file_id, None)
        if gone is None:
            return respond(404, error_body(404, "No such File object."), {})
        return respond(200, {"id": file_id, "object": "file", "deleted": True}, {})

    # -- batches ---------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        """``POST /batches``."""
        try:
            body = await request.json()
        except ValueError:
            return respond(400, error_body(400, "The body is not JSON."), {})
        metadata = {str(k): str(v) for k, v in (body.get("metadata") or {}).items()}
        info = {"input_file_id": body.get("input_file_id"), "metadata": metadata}
        refused = await self._guard(request, "create", info)
        if refused is not None:
            return refused
        source = self.files.get(str(body.get("input_file_id")))
        endpoint = str(body.get("endpoint"))
        if source is None:
            return respond(404, error_body(404, "No such File object."), {})
        problem = (
            "The input file must be uploaded with purpose 'batch'." if source.purpose != "batch"
            else "completion_window must be '24h'." if body.get("completion_window") != "24h"
            else f"Unsupported endpoint {endpoint!r}." if endpoint not in ENDPOINTS
            else None
        )  # fmt: skip
        if problem is not None:
            return respond(400, error_body(400, problem), {})
        with self._lock:
            batch_id, number = self._id("batch")
            made = _Batch(batch_id, source.id, endpoint, "24h", metadata, int(time.time()),
                          number, [], [])  # fmt: skip
            self.batches[batch_id] = made
            key = (metadata.get("promptgrid_run", ""), metadata.get("promptgrid_chunk", ""))
            self.created[key] += 1
            answer = made.json()
        if self._done(request, "create", {**info, "id": batch_id}):
            return _abort(request)
        return respond(200, answer, {})

    async def list_batches(self, request: web.Request) -> web.Response:
        """``GET /batches``: newest first."""
        refused = await self._guard(request, "list", dict(request.query))
        if refused is not None:
            return refused
        with self._lock:
            found = sorted(self.batches.values(), key=lambda b: b.number, reverse=True)
            limit = min(int(request.query.get("limit") or 20), 100)
            page, more = _page(found, request.query.get("after"), limit)
            data = [b.json() for b in page]
        return respond(200, _list(data, more), {})

    async def retrieve(self, request: web.Request) -> web.Response:
        """``GET /batches/{id}``: a poll, which moves a batch along (see the docstring)."""
        batch_id = request.match_info["batch_id"]
        refused = await self._guard(request, "retrieve", {"id": batch_id})
        if refused is not None:
            return refused
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return respond(404, error_body(404, "No such Batch object."), {})
            self.polls += 1
            batch.polls += 1
            self._on_poll(batch)
            answer = batch.json()
        return respond(200, answer, {})

    async def cancel(self, request: web.Request) -> web.Response:
        """``POST /batches/{id}/cancel``."""
        batch_id = request.match_info["batch_id"]
        refused = await self._guard(request, "cancel", {"id": batch_id})
        if refused is not None:
            return refused
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return respond(404, error_body(404, "No such Batch object."), {})
            if batch.status in ("validating", "in_progress", "finalizing"):
                self._move(batch, "cancelling")
            answer = batch.json()
        return respond(200, answer, {})

    def routes(self, app: web.Application, prefixes: tuple[str, ...]) -> None:
        """Add the endpoints under each prefix."""
        for prefix in prefixes:
            app.router.add_post(f"{prefix}/files", self.upload)
            app.router.add_get(f"{prefix}/files", self.list_files)
            app.router.add_get(f"{prefix}/files/{{file_id}}", self.get_file)
            app.router.add_get(f"{prefix}/files/{{file_id}}/content", self.content)
            app.router.add_delete(f"{prefix}/files/{{file_id}}", self.delete)
            app.router.add_post(f"{prefix}/batches", self.create)
            app.router.add_get(f"{prefix}/batches", self.list_batches)
            app.router.add_get(f"{prefix}/batches/{{batch_id}}", self.retrieve)
            app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", self.cancel)

    # -- progress (under the lock) ---------------------------------------------------------
    def _move(self, batch: _Batch, status: str) -> None:
        batch.status = status
        batch.stamps[status] = int(time.time())

    def _validate(self, batch: _Batch) -> None:
        """Read the batch's input file (as the provider does, after creating the batch)."""
        if batch.status == "validating" and not batch.lines and not batch.problems:
            data = self.files[batch.input_file_id].data
            batch.lines, batch.problems = _validate(data, batch.endpoint)

    def _on_poll(self, batch: _Batch) -> None:
        if batch.status == "validating":
            self._validate(batch)
            self._move(batch, "failed" if batch.problems else "in_progress")
        elif batch.status == "cancelling":
            self._finish(batch, "cancelled")
        elif batch.status == "in_progress":
            after = self.core.cfg.get("batch_complete_after")
            if after is not None and batch.polls >= after:
                self.answer(batch, len(batch.lines))
                self._finish(batch, "completed")

    def answer(self, batch: _Batch, upto: int) -> None:
        """Answer the batch's requests up to the ``upto``-th (in file order)."""
        self._validate(batch)
        source = self.files[batch.input_file_id].data
        api = "responses" if batch.endpoint.endswith("/responses") else "chat"
        for start, end in batch.lines[batch.done : upto]:
            ok, line, custom_id = self._answer_line(json.loads(source[start:end]), api)
            if ok:
                batch.output.append(line)
                batch.completed += 1
                self.answered[custom_id] += 1
            else:
                batch.errors_out.append(line)
                batch.failed += 1
        batch.done = max(batch.done, upto)

    def _answer_line(self, line: Mapping[str, Any], api: str) -> tuple[bool, bytes, str]:
        custom_id = str(line["custom_id"])
        ask = ask_of(line["body"], api)
        fault = self.core.batch_fault(ask.last)
        number = self.core.next_number()
        request_id = f"req_{number:012x}"
        answer: Any
        ok = True
        if fault is not None and (fault.isdigit() or fault in ERROR_STATUS):
            status = ERROR_STATUS[fault] if not fault.isdigit() else int(fault)
            answer = injected_error(fault, ask.model, self.core.cfg, {})
            ok = False
        elif fault == "garbage":
            status, answer = 200, {"id": "chatcmpl-garbage", "object": "chat.completion",
                                   "choices": "lots"}  # fmt: skip
        elif fault is None or fault in ANSWER_KINDS or fault == "truncated":
            status, answer = 200, self.core.answer_body(ask, fault, None, number, request_id)
        elif fault == "deep_body":
            status, answer = 200, _DEEP
        else:  # a fault of the wire (drop, stall, ...) has no meaning here: a server error
            status, answer, ok = 500, error_body(500), False
        response = {"status_code": status, "request_id": request_id, "body": answer}
        out = {"id": f"batch_req_{number}", "custom_id": custom_id, "response": response,
               "error": None}  # fmt: skip
        data = json.dumps(out).encode()
        if fault == "deep_body":  # json.dumps would overflow writing DEEP_JSON: splice it in
            data = data.replace(_DEEP_MARK, DEEP_JSON)
        return ok, data, custom_id

    def _finish(self, batch: _Batch, status: str) -> None:
        """End a batch: its output and error files written, as far as it got."""
        if status == "expired":
            for start, end in batch.lines[batch.done :]:
                data = self.files[batch.input_file_id].data
                custom_id = json.loads(data[start:end])["custom_id"]
                error = {"code": "batch_expired", "message": "This request could not be "
                         "executed before the completion window expired."}  # fmt: skip
                out = {"id": f"batch_req_x{start}", "custom_id": custom_id, "response": None,
                       "error": error}  # fmt: skip
                batch.errors_out.append(json.dumps(out).encode())
        for kind, lines in (("output", batch.output), ("error", batch.errors_out)):
            if lines:
                file_id, number = self._id("file")
                name = f"{batch.id}_{kind}.jsonl"
                data = b"\n".join(lines) + b"\n"
                self.files[file_id] = _File(file_id, name, "batch_output", data,
                                            int(time.time()), number)  # fmt: skip
                setattr(batch, f"{kind}_file_id", file_id)
        self._move(batch, status)


class BatchControls:
    """What a test does to a fault server's batches (``server.batches``); ``batch_id`` None
    means every batch not yet ended."""

    def __init__(self, batches: Batches) -> None:
        self._b = batches

    def _each(self, batch_id: str | None) -> Iterator[_Batch]:
        b = self._b
        chosen = [b.batches[batch_id]] if batch_id is not None else [
            x for x in b.batches.values() if x.status in _RUNNING
        ]  # fmt: skip
        for batch in chosen:
            b._validate(batch)  # its file is read before it can run
            yield batch

    def ids(self) -> list[str]:
        """Every batch id, oldest first."""
        with self._b._lock:
            return list(self._b.batches)

    def status(self, batch_id: str) -> dict[str, Any]:
        """A batch as ``GET /batches/{id}`` shows it (without counting as a poll)."""
        with self._b._lock:
            return self._b.batches[batch_id].json()

    def progress(self, batch_id: str | None = None, done: int = 0) -> None:
        """The first ``done`` requests are answered; the batch is ``in_progress``."""
        with self._b._lock:
            for batch in self._each(batch_id):
                self._b.answer(batch, min(done, len(batch.lines)))
                if batch.status == "validating":
                    self._b._move(batch, "in_progress")

    def complete(self, batch_id: str | None = None) -> None:
        """Answer every request: ``completed``, with its output (and error) file."""
        with self._b._lock:
            for batch in self._each(batch_id):
                self._b.answer(batch, len(batch.lines))
                self._b._finish(batch, "completed")

    def expire(self, batch_id: str | None = None, done: int | None = None) -> None:
        """``expired``: what was answered (and the first ``done``) is in the output file, the
        rest ``batch_expired`` in the error file."""
        with self._b._lock:
            for batch in self._each(batch_id):
                if done is not None:
                    self._b.answer(batch, min(done, len(batch.lines)))
                self._b._finish(batch, "expired")

    def fail(self, batch_id: str | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        """``failed`` validation, with ``errors`` (default: one invalid-file error)."""
        with self._b._lock:
            for batch in self._each(batch_id):
                batch.problems = errors or [
                    {"code": "invalid_file", "message": "The file is not valid (FaultServer)."}
                ]
                self._b._move(batch, "failed")

    def script(self, faults: list[str], op: str | None = None) -> None:
        """Fail the next Files/Batch API calls (``op`` only, if given): an HTTP status, or
        ``drop``; ``ok`` lets one through."""
        with self._b._lock:
            self._b._script.extend((op, str(f)) for f in faults)

    def set_hook(self, hook: Hook | None) -> None:
        """Call ``hook(op, info)`` before each Files/Batch API call and ``hook(op + ":done",
        info)`` after it took effect; ``"abort"`` closes the connection there."""
        self._b.hook = hook

    def stats(self) -> dict[str, Any]:
        """``uploads`` by file name, ``created`` batches by ``(promptgrid_run,
        promptgrid_chunk)`` (as ``"run/chunk"``), ``answered`` requests by custom_id,
        ``polls``, ``calls`` by operation, and how many ``files`` and ``batches`` exist."""
        b = self._b
        with b._lock:
            return {
                "uploads": Counter(b.uploads),
                "created": Counter({f"{r}/{c}": n for (r, c), n in b.created.items()}),
                "answered": Counter(b.answered),
                "polls": b.polls,
                "calls": Counter(b.calls),
                "files": len(b.files),
                "batches": len(b.batches),
            }

    def reset(self) -> None:
        """Forget every file, batch, script and counter."""
        self._b.reset()


def _validate(data: bytes, endpoint: str) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
    """The request lines of an input file, and its problems (as a failed batch's errors)."""
    lines: list[tuple[int, int]] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    start = 0
    number = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if end > start:
            number += 1
            problem = _check_line(data[start:end], endpoint, seen)
            if problem is not None and len(problems) < 100:
                problems.append({"code": "invalid_request", "line": number, "message": problem})
            lines.append((start, end))
        start = end + 1
    if len(lines) > MAX_LINES:
        problems.append({"code": "too_many_requests",
                         "message": f"{len(lines)} requests, over {MAX_LINES}."})  # fmt: skip
    return lines, problems


def _check_line(raw: bytes, endpoint: str, seen: set[str]) -> str | None:
    try:
        line = json.loads(raw)
    except ValueError:
        return "not valid JSON"
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return "no custom_id"
    if line["custom_id"] in seen:
        return f"duplicate custom_id {line['custom_id']!r}"
    seen.add(line["custom_id"])
    if line.get("method") != "POST":
        return "method must be POST"
    if line.get("url") != endpoint:
        return f"url {line.get('url')!r} is not the batch's endpoint {endpoint!r}"
    if not isinstance(line.get("body"), dict):
        return "no body"
    return None


def _page(items: list[Any], after: str | None, limit: int) -> tuple[list[Any], bool]:
    start = 0
    if after:
        ids = [item.id for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = items[start : start + limit]
    return page, start + limit < len(items)


def _list(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    return {
        "object": "list", "data": data, "has_more": more,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    }  # fmt: skip


def _abort(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)  # never sent: the connection is gone
