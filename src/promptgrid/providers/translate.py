"""The ``openai`` provider: OpenAI and every OpenAI-compatible server, through the official SDK.

One client per endpoint, built inside the run's event loop and closed at its end. The SDK's own
retries are off (``max_retries=0``): promptgrid retries, taking fresh limiter capacity for each
attempt. Every failure leaves this module as a :mod:`promptgrid.errors` class, built with
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
    shape, no choices, no finish_reason     -> MalformedResponse
    APIError (no status)                    -> ServerError
    any other OpenAIError                   -> BadRequest

Nothing else escapes: a foreign exception from a response is a ``MalformedResponse``. Every
string a server sends back (message, request id, headers, the answer) is scrubbed of the key.
Only this module imports ``openai``; the CLI imports it when a run needs it, never at ``--help``.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import math
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from datetime import timezone
from functools import cache
from typing import Any, TypeVar

import aiohttp
import httpx2
import openai
from openai.resources.chat.completions import AsyncCompletions

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
from .base import Completion, Request

__all__ = ["OpenAIProvider", "retry_after", "translate"]

# Far above any sensible concurrency; aiohttp's per-host limit is unlimited by default.
_MAX_CONNECTIONS = 1000
_RATE_LIMIT_PREFIX = "x-ratelimit-"
T = TypeVar("T")


class OpenAIProvider:
    """Chat completions through ``openai.AsyncOpenAI`` (aiohttp transport by default).

    ``api_key`` is the key itself (``promptgrid.config`` decides where it comes from); it never
    leaves this object: every value a server sends back is scrubbed of it. ``http_client``
    replaces the transport (tests pass ``httpx2.AsyncClient(transport=httpx2.MockTransport(...))``);
    the provider owns it and closes it in :meth:`aclose`. Create it inside the running loop.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float = 60.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.endpoint = base_url.rstrip("/")
        self._key = api_key
        self._timeout_s = timeout_s
        if http_client is None:
            # aiohttp measured about twice httpx's calls per second under concurrency here.
            http_client = openai.DefaultAioHttpClient(
                timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
                limits=httpx2.Limits(
                    max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_CONNECTIONS
                ),
            )
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.endpoint,
            max_retries=0,  # promptgrid owns retries
            timeout=timeout_s,
            http_client=http_client,
        )

    async def complete(self, request: Request) -> Completion:
        """Send one chat completion; raise only :mod:`promptgrid.errors` classes."""
        kwargs = _create_kwargs(request)
        messages: Any = [dict(m) for m in request.messages]  # the SDK's TypedDicts, in effect
        create = self._client.chat.completions.with_raw_response.create
        try:
            # The SDK's timeout bounds each read; this bounds the whole answer (slow drips too).
            raw = await _within(
                self._timeout_s,
                create(model=request.model, messages=messages, **kwargs, timeout=self._timeout_s),
            )
            headers = {k.lower(): v for k, v in raw.headers.items()}
            completion = _completion(raw.parse(), headers)
        except asyncio.TimeoutError as exc:
            raise RequestTimeout(f"no complete answer within {self._timeout_s:g} s") from exc
        except openai.OpenAIError as exc:
            raise _scrub_error(translate(exc), self._key) from exc
        except ProviderError as exc:
            raise _scrub_error(exc, self._key) from None
        except (ValueError, TypeError, AttributeError, LookupError) as exc:
            # Undecodable bytes, bad JSON, a body of the wrong shape: this answer is garbage, the
            # next one may not be (retried as malformed, then an error row; never a dead run).
            raise _scrub_error(
                MalformedResponse(f"not a chat completion: {type(exc).__name__}: {exc}"),
                self._key,
            ) from exc
        return _scrub_completion(completion, self._key)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.close()


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
        return MalformedResponse(f"not a chat completion: {exc}")
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
    status = exc.status_code
    headers = {k.lower(): v for k, v in exc.response.headers.items()}
    body = exc.body if isinstance(exc.body, Mapping) else {}
    detail = body.get("message") if isinstance(body.get("message"), str) else exc.message
    fields: dict[str, Any] = {
        "message": f"HTTP {status}: {detail}",
        "http_status": status,
        "request_id": exc.request_id,
        "headers": headers,
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


def _completion(parsed: Any, headers: Mapping[str, str]) -> Completion:
    """Normalise a parsed ChatCompletion; an incomplete one is a MalformedResponse."""
    request_id = getattr(parsed, "_request_id", None) or headers.get("x-request-id")
    try:
        choices = parsed.choices
        if not choices:
            raise MalformedResponse("truncated: the response has no choices", request_id=request_id)
        choice = choices[0]
        if choice.finish_reason is None:
            raise MalformedResponse(
                "truncated: the response ended without a finish_reason", request_id=request_id
            )
        usage = parsed.usage
        return Completion(
            text=choice.message.content,
            finish_reason=choice.finish_reason,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            # Compatible servers often omit the details.
            cached_tokens=getattr(
                getattr(usage, "prompt_tokens_details", None), "cached_tokens", None
            ),
            reasoning_tokens=getattr(
                getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None
            ),
            resolved_model=parsed.model,
            request_id=request_id,
            rate_limits={k: v for k, v in headers.items() if k.startswith(_RATE_LIMIT_PREFIX)},
        )
    except (AttributeError, TypeError, IndexError) as exc:  # a 200 that is not a completion
        raise MalformedResponse(f"not a chat completion: {exc}", request_id=request_id) from exc


async def _within(seconds: float, call: Awaitable[T]) -> T:
    """Await ``call`` with a deadline; ``asyncio.timeout`` (3.11+) spares ``wait_for``'s task."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await call
    return await asyncio.wait_for(call, seconds)


def _create_kwargs(request: Request) -> dict[str, Any]:
    """The request's params as ``create()`` arguments; ones the SDK does not know (``top_k`` for
    vLLM, ...) travel in ``extra_body`` so compatible servers still receive them."""
    if request.params.get("stream"):
        raise BadRequest("stream: true is not supported; promptgrid needs whole answers")
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in request.params.items():
        (known if name in _create_parameters() else extra)[name] = value
    if extra:
        known["extra_body"] = {**extra, **known.get("extra_body", {})}
    return known


@cache
def _create_parameters() -> frozenset[str]:
    reserved = {"self", "model", "messages", "timeout", "extra_headers", "extra_query"}
    return frozenset(inspect.signature(AsyncCompletions.create).parameters) - reserved


def _scrub(value: Any, secret: str) -> Any:
    """A value with the key replaced by ``***`` (some servers echo it back, in messages, ids or
    headers); anything else unchanged."""
    if secret and isinstance(value, str) and secret in value:
        return value.replace(secret, "***")
    return value


def _scrub_error(error: ProviderError, secret: str) -> ProviderError:
    error.message = _scrub(error.message, secret)
    error.args = (error.message,)
    error.request_id = _scrub(error.request_id, secret)
    error.headers = {k: _scrub(v, secret) for k, v in error.headers.items()}
    return error


def _scrub_completion(completion: Completion, secret: str) -> Completion:
    if not secret:
        return completion
    fields = ("text", "finish_reason", "resolved_model", "request_id")
    changed = {f: _scrub(getattr(completion, f), secret) for f in fields}
    headers = {k: _scrub(v, secret) for k, v in completion.rate_limits.items()}
    return replace(completion, rate_limits=headers, **changed)
