"""The ``openai`` provider: OpenAI and every OpenAI-compatible server, through the official SDK.

One client per endpoint, built inside the run's event loop and closed at its end; Azure's
deployment-based API (an ``api_version``) gets ``AsyncAzureOpenAI``. The SDK's own retries are
off (``max_retries=0``): promptgrid retries, taking fresh limiter capacity for each attempt.

A request goes to Chat Completions (:mod:`.chat`) or the Responses API (:mod:`.responses`), as
its ``api`` says, whole or streamed (:mod:`.streaming`). No answer is read past
``max_response_bytes`` (:mod:`.bounded`). Every failure leaves this module as a
:mod:`promptgrid.errors` class (the table is in :mod:`.translate`); nothing else escapes: a
foreign exception from a response is a ``MalformedResponse``. Every string a server sends back
(message, request id, headers, the answer) is scrubbed of the key. Only the provider modules
import ``openai``; the CLI imports them when a run needs them, never at ``--help``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2
import openai

from ..credentials import secrets_of
from ..errors import MalformedResponse, ProviderError, RequestTimeout
from ..spec.schema import DEFAULT_MAX_RESPONSE_BYTES
from .base import Completion, Request
from .bounded import BoundedResponses
from .chat import ChatStream
from .chat import completion as chat_completion
from .payload import arguments
from .responses import ResponsesStream
from .responses import completion as responses_completion
from .streaming import Accumulator, consume
from .translate import (
    GARBLED,
    Secrets,
    retry_after,
    scrub_completion,
    scrub_error,
    translate,
    within,
)

__all__ = ["OpenAIProvider", "retry_after", "translate"]

# Far above any sensible concurrency; aiohttp's per-host limit is unlimited by default.
_MAX_CONNECTIONS = 1000


class OpenAIProvider:
    """Chat Completions and Responses through ``openai.AsyncOpenAI`` (aiohttp transport).

    ``api_key`` is the key itself (``promptgrid.config`` decides where it comes from); it never
    leaves this object: every value a server sends back is scrubbed of it, and of the
    credentials ``base_url`` may carry. ``azure_api_version``
    makes it an Azure client (``base_url`` is then the resource's URL, and each request's model
    its deployment). ``max_response_bytes`` bounds every answer, decompressed (a stream: all
    of it). ``http_client`` replaces the transport (tests pass
    ``httpx2.AsyncClient(transport=httpx2.MockTransport(...))``); the provider owns it, bounds
    its answers too, and closes it in :meth:`aclose`. Create it inside the running loop.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float = 60.0,
        max_response_bytes: int | None = None,
        http_client: httpx2.AsyncClient | None = None,
        azure_api_version: str | None = None,
    ) -> None:
        self.endpoint = base_url.rstrip("/")
        self._key: Secrets = secrets_of(api_key, base_url)  # scrubbed from every answer
        self._timeout_s = timeout_s
        bounded = BoundedResponses(max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES)
        if http_client is None:
            # aiohttp measured about twice httpx's calls per second under concurrency here.
            http_client = openai.DefaultAioHttpClient(
                timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
                limits=httpx2.Limits(
                    max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_CONNECTIONS
                ),
                event_hooks={"response": [bounded]},
            )
        else:
            hooks = http_client.event_hooks
            http_client.event_hooks = {**hooks, "response": [*hooks["response"], bounded]}
        common: dict[str, Any] = {
            "api_key": api_key,
            "max_retries": 0,  # promptgrid owns retries
            "timeout": timeout_s,
            "http_client": http_client,
        }
        self._client: openai.AsyncOpenAI
        if azure_api_version is not None:
            self._client = openai.AsyncAzureOpenAI(
                azure_endpoint=self.endpoint, api_version=azure_api_version, **common
            )
        else:
            self._client = openai.AsyncOpenAI(base_url=self.endpoint, **common)

    async def complete(self, request: Request) -> Completion:
        """Send one request; raise only :mod:`promptgrid.errors` classes."""
        started = time.monotonic()
        try:
            # The SDK's timeout bounds each read; this bounds the whole answer (slow drips and
            # whole streams too).
            completion = await within(self._timeout_s, self._call(request, started))
            return scrub_completion(completion, self._key)
        except asyncio.TimeoutError as exc:
            raise RequestTimeout(f"no complete answer within {self._timeout_s:g} s") from exc
        except openai.OpenAIError as exc:
            raise scrub_error(translate(exc), self._key) from exc
        except ProviderError as exc:
            raise scrub_error(exc, self._key) from None
        except GARBLED as exc:
            # Undecodable bytes, bad JSON (nested beyond the parser's recursion too), a body of
            # the wrong shape: this answer is garbage, the next one may not be (retried as
            # malformed, then an error row; never a dead run).
            what = "response" if request.api == "responses" else "chat completion"
            raise scrub_error(
                MalformedResponse(f"not a {what}: {type(exc).__name__}: {exc}"), self._key
            ) from exc

    async def _call(self, request: Request, started: float) -> Completion:
        accumulator: Accumulator
        kwargs = arguments(request)
        if request.api == "responses":
            raw: Any = await self._client.responses.with_raw_response.create(
                **kwargs, timeout=self._timeout_s
            )
            normalise, accumulator = responses_completion, ResponsesStream()
        else:
            raw = await self._client.chat.completions.with_raw_response.create(
                **kwargs, timeout=self._timeout_s
            )
            normalise, accumulator = chat_completion, ChatStream()
        headers = {k.lower(): v for k, v in raw.headers.items()}
        parsed = raw.parse()
        if not kwargs.get("stream"):
            return normalise(parsed, headers)
        return await consume(parsed, accumulator, headers, started)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.close()
