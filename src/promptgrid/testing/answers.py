"""What the fault server reads and sends: the request as it needs it (from Chat Completions or the
Responses API), error bodies, the catalogue of faults and answer kinds, and the broken bodies of
the faults that answer ``200`` with something a client must refuse. (Good answers are made in
:mod:`.made` and shaped in :mod:`.shapes`.)

Bodies copy OpenAI's shapes closely (``error.type`` and ``error.code``, ``usage`` details, request
ids) because clients classify failures on them: a 429 with ``insufficient_quota`` must stop a run
where any other 429 is retried. Usage comes from :mod:`promptgrid.tokens`, the estimator that
promptgrid's limiter and plans use, so a test can predict every number the server reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from aiohttp import web

from ..tokens import estimate_prompt_tokens, message_text, output_limit

__all__ = ["ANSWER_KINDS", "FAULTS"]

#: Fault names and what each does (besides HTTP statuses: any ``"400"``..``"599"`` is accepted,
#: and ``"200"`` means ``"ok"``). Injected faults replace normal processing: they neither check
#: nor charge the rate-limit buckets.
FAULTS: Mapping[str, str] = MappingProxyType(
    {
        "ok": "a normal answer; lets one request through a script",
        "quota": "429 with code insufficient_quota: retrying never helps",
        "retry_after_bad": (
            "429 rate limit whose retry-after is the bad_retry_after setting (unusable: negative, "
            "nan, zero, a past date) and no retry-after-ms"
        ),
        "drop": "the connection is closed without a response",
        "stall": "held for stall_s before a normal answer",
        "truncated": "200 with finish_reason null and the answer cut in half",
        "malformed": "200 with JSON cut short",
        "bad_utf8": "200, application/json, a completion whose bytes are not valid UTF-8",
        "garbage": '200 with valid JSON that is not a chat completion ("choices": "lots")',
        "empty": "200 with an empty body",
        "stream_cut": (
            "a streamed answer stops after its first event carrying output and the connection "
            "is closed; an answer not streamed is dropped (as drop)"
        ),
        "tool_call": (
            "answer kind: a call of the request's named or first function tool (with arguments "
            "fitting its parameters' schema), as if tool_choice were required"
        ),
        "bad_json": "answer kind: the answer's text cut in half (a structured output that "
        "does not parse)",
        "refusal": "answer kind: a refusal (message.refusal, or a refusal part) and no text",
        "deep_body": (
            "200 with a 4 KB body of JSON nested 2,000 deep (a recursion bomb); streamed, one "
            "event of it"
        ),
        "error_surrogate": '400 whose error message holds a lone surrogate ("\\ud800")',
        "surrogates": (
            'answer kind: the text ends in an emoji and a lone surrogate ("\\ud800"), and so '
            "does every tool call's id; streamed, the emoji's surrogate pair is split across "
            "two chunks"
        ),
        "bad_usage": (
            'answer kind: every usage number is the bad_usage setting ("n/a", NaN, Infinity, '
            "-1, 2.5, 1e12: any JSON value)"
        ),
        "huge": "200, a good answer (whole or streamed) whose text is huge_bytes of 'x'",
        "gzip_bomb": (
            "200, the huge answer gzip-compressed (Content-Encoding: gzip): about 1 KB on the "
            "wire per MiB it inflates to"
        ),
        "endless": "200, a good answer (whole or streamed) whose text never ends",
    }
)
#: Faults whose answer is too large to hold (:mod:`.floods`).
FLOODS = frozenset({"huge", "gzip_bomb", "endless"})
#: Scripted kinds of good answer (200s a client must accept); like faults, they bypass the
#: rate-limit buckets.
ANSWER_KINDS = frozenset({"tool_call", "bad_json", "refusal", "surrogates", "bad_usage"})
#: Faults answered with a 200 whose body is broken (after the usual latency).
BROKEN = frozenset({"malformed", "bad_utf8", "garbage", "empty", "deep_body"})
#: Named faults answered with an error status (besides the HTTP statuses themselves).
ERROR_STATUS: Mapping[str, int] = MappingProxyType(
    {"quota": 429, "retry_after_bad": 429, "error_surrogate": 400}
)
#: JSON nested 2,000 deep: ``json.loads`` (and most parsers) overflow their recursion on it.
DEEP_JSON = b"[" * 2000 + b"]" * 2000
_QUOTA = "You exceeded your current quota, please check your plan and billing details."
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
# A header in the x-ratelimit-* family, which clients keep (promptgrid stores them per attempt),
# but not one a limiter reads: an echoed key must reach storage without breaking rate learning.
ECHO_HEADER = "x-ratelimit-limit-key"


class Ask(NamedTuple):
    """What the server needs from a request, whichever API it came to."""

    last: str  # the last user message: what the answer echoes and scripts match
    model: str
    n: int
    prompt_tokens: int
    cost: int  # charged against the TPM bucket up front: prompt + max_tokens * n
    api: str = "chat"  # "chat" or "responses"
    stream: bool = False
    body: Mapping[str, Any] = MappingProxyType({})


def read_ask(raw: bytes, api: str = "chat") -> Ask:
    """Read a request body; ``ValueError``, ``TypeError`` or ``AttributeError`` if it is not one."""
    return ask_of(json.loads(raw), api)


def ask_of(body: Mapping[str, Any], api: str = "chat") -> Ask:
    """A request body (already parsed: a batch line's) as the server needs it."""
    if api == "responses":
        messages = input_messages(body)
        n = 1
    else:
        messages = body.get("messages") or []
        n = int(body.get("n") or 1)
    prompt_tokens = estimate_prompt_tokens(messages)
    users = [m for m in messages if m.get("role") == "user"]
    max_tokens = output_limit(body) or 16  # OpenAI's own default for an unbounded request varies
    return Ask(
        last=message_text(users[-1].get("content")) if users else "",
        model=str(body.get("model", "")),
        n=n,
        prompt_tokens=prompt_tokens,
        cost=prompt_tokens + max_tokens * n,
        api=api,
        stream=bool(body.get("stream")),
        body=body,
    )


def input_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Responses request's ``instructions`` and ``input`` as chat-like messages (for the
    prompt's estimate and its last user message): input text parts count as text, a
    function call output as a tool message."""
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    messages = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    for item in items:
        if "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = [
                    {"type": "text", "text": p.get("text", "")} if p.get("type") == "input_text"
                    else {"type": "image_url", "image_url": {"detail": p.get("detail")}}
                    for p in content
                ]  # fmt: skip
            messages.append({"role": item["role"], "content": content})
        elif item.get("type") == "function_call_output":
            messages.append({"role": "tool", "content": item.get("output")})
        else:
            messages.append({"role": "assistant", "content": item.get("arguments")})
    return messages


def check_fault(name: str) -> str:
    """The canonical name of a fault (``"200"`` is ``"ok"``); ``ValueError`` if unknown."""
    if name in FAULTS or (name.isdigit() and 400 <= int(name) <= 599):
        return name
    if name == "200":
        return "ok"
    raise ValueError(f"unknown fault {name!r}: use an HTTP status or one of {sorted(FAULTS)}")


def error_body(
    status: int, message: str | None = None, type_: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body; defaults by status."""
    dcode, dmessage = _ERRORS.get(status, (None, f"HTTP {status}."))
    dtype = "server_error" if status >= 500 else "invalid_request_error"
    err = {"message": message or f"{dmessage} (promptgrid FaultServer)", "type": type_ or dtype}
    return {"error": {**err, "param": None, "code": code or dcode}}


def injected_error(
    fault: str, model: str, cfg: Mapping[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """The body of an injected error status or named error fault (:data:`ERROR_STATUS`); adds the
    ``retry-after`` headers a 429 carries (``retry_after_s``, or the unusable ``bad_retry_after``
    with no ``retry-after-ms`` to fall back on)."""
    if fault == "quota":
        return error_body(429, _QUOTA, "insufficient_quota", "insufficient_quota")
    if fault == "error_surrogate":
        return error_body(400, "Invalid request \ud800 (promptgrid FaultServer)")
    if fault not in ("429", "retry_after_bad"):
        return error_body(int(fault))
    if fault == "retry_after_bad":
        headers["retry-after"] = cfg["bad_retry_after"]
    elif (seconds := cfg["retry_after_s"]) is not None:
        headers["retry-after"] = str(math.ceil(seconds))
        headers["retry-after-ms"] = str(round(seconds * 1000))
    msg = (
        f"Rate limit reached for {model} in organization org-promptgrid on requests "
        "per min (RPM) (injected fault)."
    )
    return error_body(429, msg, "requests", "rate_limit_exceeded")


def broken_body(fault: str, answer: dict[str, Any]) -> bytes:
    """The body a :data:`BROKEN` fault sends instead of ``answer``.

    ``bad_utf8`` keeps the whole completion and spoils only its id's bytes, so the sole problem a
    client can hit is decoding; ``garbage`` keeps the id and object so only the shape is wrong.
    """
    if fault == "malformed":
        return b'{"id": "chatcmpl-1", "choices": ['
    if fault == "bad_utf8":
        return json.dumps(answer).encode().replace(b'"chatcmpl-', b'"chatcmpl-\xff\xfe', 1)
    if fault == "garbage":
        shape = {"id": answer["id"], "object": answer["object"], "choices": "lots"}
        return json.dumps(shape).encode()
    if fault == "empty":
        return b""
    if fault == "deep_body":
        return b'{"id": "chatcmpl-deep", "object": "chat.completion", "choices": %s}' % DEEP_JSON
    raise ValueError(f"{fault!r} is not a broken-body fault")


def plant_key(headers: dict[str, str], echo: str | None) -> None:
    """With ``echo`` (the ``echo_key`` setting: the caller's key), plant it in the request id and
    an ``x-ratelimit-*`` header."""
    if echo is not None:
        headers["x-request-id"] = f"{headers.get('x-request-id', 'req')}-{echo}"
        headers[ECHO_HEADER] = echo


def respond(
    status: int, payload: Any, headers: dict[str, str], echo: str | None = None
) -> web.Response:
    """An ``application/json`` response: ``payload`` as JSON, or sent as is if it is bytes.

    ``echo`` (the ``echo_key`` setting) is the caller's key, planted where a client might keep
    it: the request id, an ``x-ratelimit-*`` header and an error's message.
    """
    plant_key(headers, echo)
    if echo is not None and isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        payload = {"error": {**error, "message": f"{error['message']} key={echo}"}}
    headers["Content-Type"] = "application/json"
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return web.Response(status=status, body=body, headers=headers)
