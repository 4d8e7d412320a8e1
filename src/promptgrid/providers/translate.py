"""What the ``openai`` provider's API modules share: SDK errors translated into promptgrid's, the
server's ``retry-after``, everything a server sends back scrubbed (of the key, and of what
cannot be stored), and the answer's pieces (usage, rate-limit headers, JSON dumps) read the
same way everywhere.

This is the edge where a server's data enters: past it, a completion's texts are valid UTF-8
(a lone surrogate is U+FFFD: :func:`promptgrid.untrusted.text`), its text fields are strings
(or None: else the answer is malformed), and each usage number is a count (an ``int`` from 0)
or ``None`` when the server sent anything else (:func:`promptgrid.untrusted.count`).

Every failure leaves the provider as a :mod:`promptgrid.errors` class, built with
``raise Ours(...) from exc``::

    APIStatusError 429 + insufficient_quota -> QuotaExceeded     (stops the run)
    APIStatusError 429                      -> RateLimited       (retry_after from the headers)
    APIStatusError 401 / 403                -> AuthenticationFailed (stops the run)
    APIStatusError 408 / 409 / 5xx          -> ServerError
    APIStatusError other 4xx                -> BadRequest
    APITimeoutError, our own deadline       -> RequestTimeout
    APIConnectionError, APITimeoutError
    caused by a dropped connection          -> ConnectionFailed
    APIResponseValidationError, bad JSON,
    undecodable bytes, a body of the wrong
    shape, no choices, no finish_reason,
    a stream cut short                      -> MalformedResponse
    APIError (no status; an error event
    inside a stream)                        -> ServerError
    any other OpenAIError                   -> BadRequest
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from datetime import timezone
from typing import Any, TypeVar

import aiohttp
import openai

from .. import untrusted
from ..errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    ServerError,
)
from .base import Choice, Completion

__all__ = ["retry_after", "status_error", "translate"]

RATE_LIMIT_PREFIX = "x-ratelimit-"
#: What reading a garbled answer raises: undecodable bytes, bad JSON, JSON nested beyond the
#: parser's recursion, a body of the wrong shape, a number out of range. Such an answer is a
#: ``MalformedResponse``.
GARBLED = (ValueError, TypeError, AttributeError, LookupError, ArithmeticError, RecursionError)
T = TypeVar("T")


def translate(exc: openai.OpenAIError) -> ProviderError:
    """The promptgrid error for an exception that came out of the SDK (see the module table)."""
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc)
    if isinstance(exc, openai.APITimeoutError) and not _dropped(exc):
        return RequestTimeout(f"timed out: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        return ConnectionFailed(f"connection failed: {exc}{cause}")
    if isinstance(exc, openai.APIResponseValidationError):
        return MalformedResponse(f"not a valid answer: {exc}")
    if isinstance(exc, openai.APIError):
        return ServerError(f"API error: {exc}")
    return BadRequest(f"{type(exc).__name__}: {exc}")


def _dropped(exc: BaseException) -> bool:
    """A "timeout" that was really a dropped connection: the SDK's aiohttp transport maps every
    ``aiohttp.ClientConnectionError`` (``ServerDisconnectedError`` included) to ``ConnectTimeout``.
    Real timeouts have a ``TimeoutError`` (aiohttp's or asyncio's) in their cause chain."""
    dropped = False
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain is short; never follow a cycle for ever
        if seen is None or isinstance(seen, (TimeoutError, asyncio.TimeoutError)):
            return dropped and seen is None
        dropped = dropped or isinstance(seen, (aiohttp.ClientConnectionError, ConnectionError))
        seen = seen.__cause__ or seen.__context__
    return dropped


def _status_error(exc: openai.APIStatusError) -> ProviderError:
    headers = {k.lower(): v for k, v in exc.response.headers.items()}
    return status_error(exc.status_code, exc.body, headers, exc.message, exc.request_id)


def status_error(
    status: int,
    body: Any,
    headers: Mapping[str, str],
    message: str,
    request_id: str | None = None,
) -> ProviderError:
    """The promptgrid error for an HTTP error status and its error body (the ``error`` object,
    or the whole body): for a failed online call, and for a failed line of a batch's output."""
    body = body if isinstance(body, Mapping) else {}
    detail = body.get("message") if isinstance(body.get("message"), str) else message
    fields: dict[str, Any] = {
        "message": f"HTTP {status}: {detail}",
        "http_status": status,
        "request_id": request_id,
        "headers": dict(headers),
    }
    if status == 429:
        if "insufficient_quota" in (body.get("code"), body.get("type")):
            return QuotaExceeded(**fields)
        return RateLimited(retry_after=retry_after(headers), **fields)
    if status in (401, 403):
        return AuthenticationFailed(**fields)
    if status in (408, 409) or status >= 500:
        return ServerError(retry_after=retry_after(headers), **fields)
    return BadRequest(**fields)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's wait in seconds: ``retry-after-ms``, else ``retry-after`` (seconds or an
    HTTP date). ``None`` — fall back to backoff — when absent, unreadable, not finite, zero or
    negative, or a date already past: a server that says "retry now" a hundred times would
    otherwise be hammered. ``headers`` must be lower-cased; ``now`` is for tests."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
            if when.tzinfo is None:  # an HTTP date is GMT
                when = when.replace(tzinfo=timezone.utc)
            seconds = when.timestamp() - (time.time() if now is None else now)
        return seconds if math.isfinite(seconds) and seconds > 0 else None
    return None


async def within(seconds: float, call: Awaitable[T]) -> T:
    """Await ``call`` with a deadline; ``asyncio.timeout`` (3.11+) spares ``wait_for``'s task."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await call
    return await asyncio.wait_for(call, seconds)


# ------------------------------------------------------------------ answers


def rate_limits(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers (lower-cased names), which the limiter learns from."""
    return {k: v for k, v in headers.items() if k.startswith(RATE_LIMIT_PREFIX)}


def tokens(usage: Any, name: str) -> int | None:
    """``usage.<name>`` if it is a count, else None (omitted, or not a count: unknown)."""
    return untrusted.count(getattr(usage, name, None))


def detail(usage: Any, group: str, name: str) -> int | None:
    """``usage.<group>.<name>`` (a usage detail) if it is a count, else None."""
    return tokens(getattr(usage, group, None), name)


def dump(value: Any) -> Any:
    """An SDK object (or a list of them) as plain JSON values."""
    if isinstance(value, list):
        return [dump(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", warnings=False, exclude_none=True)
    return value


def truncated(what: str, request_id: str | None) -> MalformedResponse:
    """The error for an answer cut short (retried like any malformed answer)."""
    return MalformedResponse(f"truncated: {what}", request_id=request_id)


# ------------------------------------------------------------------ what is kept

#: What a provider scrubs: its key, or its key and the credentials its URL carries (see
#: ``promptgrid.credentials``).
Secrets = str | tuple[str, ...]


def scrub(value: Any, secret: Secrets) -> Any:
    """A text as promptgrid keeps it: surrogates resolved (:func:`promptgrid.untrusted.text`)
    and the key (and the URL's credentials) replaced by ``***`` (some servers echo them back,
    in messages, ids or headers); anything but a string unchanged."""
    if not isinstance(value, str):
        return value
    value = untrusted.text(value)
    for one in _each(secret):
        if one in value:
            value = value.replace(one, "***")
    return value


def _each(secret: Secrets) -> tuple[str, ...]:
    """The secrets to look for (a tuple from ``credentials.secrets_of`` is longest first)."""
    if isinstance(secret, str):
        return (secret,) if secret else ()
    return secret


def _found(text: str, secret: Secrets) -> bool:
    return any(one in text for one in _each(secret))


def scrub_error(error: ProviderError, secret: Secrets) -> ProviderError:
    """``error`` with its message, request id and headers scrubbed (:func:`scrub`)."""
    error.message = scrub(error.message, secret)
    error.args = (error.message,)
    error.request_id = scrub(error.request_id, secret)
    error.headers = {k: scrub(v, secret) for k, v in error.headers.items()}
    return error


#: A completion's text fields (each a string or None).
_TEXTS = ("text", "finish_reason", "resolved_model", "request_id", "refusal",
          "reasoning_summary")  # fmt: skip


def scrub_completion(completion: Completion, secret: Secrets) -> Completion:
    """``completion`` as promptgrid keeps it: every text a server sent scrubbed (:func:`scrub`),
    and every non-finite number in its JSON values (tool calls, logprobs) null. Almost always
    nothing needs it: one search of each text decides, and only then is a copy made. A text
    field that is not a string makes the answer a ``MalformedResponse``."""
    if not _dirty(completion, secret):
        return completion
    changed = {f: scrub(getattr(completion, f), secret) for f in _TEXTS}
    return replace(
        completion,
        rate_limits={k: scrub(v, secret) for k, v in completion.rate_limits.items()},
        tool_calls=_scrub_deep(completion.tool_calls, secret),
        logprobs=_scrub_deep(completion.logprobs, secret),
        more_choices=tuple(
            Choice(
                scrub(c.text, secret),
                scrub(c.finish_reason, secret),
                _scrub_deep(c.tool_calls, secret),
                scrub(c.refusal, secret),
                _scrub_deep(c.logprobs, secret),
            )
            for c in completion.more_choices
        ),
        **changed,
    )


def _dirty(completion: Completion, secret: Secrets) -> bool:
    """Whether anything the server sent needs scrubbing; raises ``MalformedResponse`` for a
    text field that is not a string (a compatible server's list of parts, a number, ...)."""
    c = completion
    texts = [c.text, c.finish_reason, c.resolved_model, c.request_id, c.refusal,
             c.reasoning_summary, *c.rate_limits.values()]  # fmt: skip
    # The common answer, checked in one pass: ASCII text only, no key, no JSON values.
    for t in texts:
        if t is not None and (type(t) is not str or not t.isascii() or _found(t, secret)):
            return _needs_scrub(completion, secret)
    return bool(c.tool_calls or c.logprobs or c.more_choices) and _needs_scrub(c, secret)


def _needs_scrub(completion: Completion, secret: Secrets) -> bool:
    """:func:`_dirty`, field by field."""
    dirty = False
    for name in _TEXTS:
        dirty = _needs(getattr(completion, name), name, secret) or dirty
    for i, c in enumerate(completion.more_choices, 1):
        for name, text in (("text", c.text), ("finish_reason", c.finish_reason),
                           ("refusal", c.refusal)):  # fmt: skip
            dirty = _needs(text, f"choice {i} {name}", secret) or dirty
    if dirty or any(_needs(v, "a header", secret) for v in completion.rate_limits.values()):
        return True
    if not (completion.tool_calls or completion.logprobs or completion.more_choices):
        return False
    more = [(c.tool_calls, c.logprobs) for c in completion.more_choices]
    return _contains((completion.tool_calls, completion.logprobs, more), secret)


def _needs(text: Any, name: str, secret: Secrets) -> bool:
    """Whether ``text`` (a string or None) needs scrubbing."""
    if text is None:
        return False
    if type(text) is not str:
        raise MalformedResponse(f"{name} is not text: {type(text).__name__}")
    return _found(text, secret) or untrusted.has_surrogate(text)


def _contains(value: Any, secret: Secrets) -> bool:
    if isinstance(value, str):
        return _found(value, secret) or untrusted.has_surrogate(value)
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_contains(k, secret) or _contains(v, secret) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_contains(v, secret) for v in value)
    return False


def _scrub_deep(value: Any, secret: Secrets) -> Any:
    value = untrusted.json_value(value)
    if not _each(secret):
        return value
    return _unkeyed(value, secret)


def _unkeyed(value: Any, secret: Secrets) -> Any:
    if isinstance(value, str):
        return scrub(value, secret)
    if isinstance(value, Mapping):
        return {k: _unkeyed(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_unkeyed(v, secret) for v in value)
    return value
