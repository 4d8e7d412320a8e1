"""The openai provider over canned HTTP: ``httpx2.MockTransport`` (openai 3.x speaks httpx2).

Every status and body maps to one promptgrid error; every exception class openai exports is
accounted for; the key never reaches a message.
"""

from __future__ import annotations

import email.utils
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

from promptgrid.config import DEFAULT_BASE_URL, resolve_base_url
from promptgrid.errors import (
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
from promptgrid.providers.base import Request
from promptgrid.providers.openai import OpenAIProvider, retry_after, translate

KEY = "sk-test-0123456789abcdefSECRET"
URL = "http://llm.test/v1"
REQUEST = Request(
    URL,
    "gpt-test",
    ({"role": "user", "content": "Name a dog."},),
    {"temperature": 0.5, "max_tokens": 20, "top_k": 5},
)
Handler = Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]]


def body(**overrides: Any) -> dict[str, Any]:
    """A chat completion as OpenAI sends it."""
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test-2025-01-01",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Rex"},
            }
        ],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 2,
            "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    }
    data.update(overrides)
    return data


@pytest.fixture
async def provider_for() -> AsyncIterator[Callable[..., OpenAIProvider]]:
    made: list[OpenAIProvider] = []

    def make(handler: Handler, **kw: Any) -> OpenAIProvider:
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        provider = OpenAIProvider(base_url=URL, api_key=KEY, http_client=client, **kw)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def reply(
    status: int,
    payload: Any = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if content is not None:
            return httpx2.Response(status, content=content, headers=headers)
        return httpx2.Response(status, json=payload, headers=headers)

    return handler


JSON = {"content-type": "application/json"}


def error_body(message: str, type_: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


# ------------------------------------------------------------------ success


async def test_completion_fields_and_request(provider_for: Callable[..., OpenAIProvider]) -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(
            200,
            json=body(),
            headers={
                "X-Request-ID": "req_abc",
                "X-RateLimit-Limit-Requests": "500",
                "x-ratelimit-remaining-tokens": "1999",
                "x-ratelimit-reset-requests": "120ms",
                "Set-Cookie": "not=ours",
            },
        )

    completion = await provider_for(handler).complete(REQUEST)
    assert completion.text == "Rex" and completion.finish_reason == "stop"
    assert (completion.prompt_tokens, completion.completion_tokens) == (11, 2)
    assert (completion.cached_tokens, completion.reasoning_tokens) == (4, 1)
    assert completion.resolved_model == "gpt-test-2025-01-01"
    assert completion.request_id == "req_abc"
    assert completion.rate_limits == {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-tokens": "1999",
        "x-ratelimit-reset-requests": "120ms",
    }
    [request] = seen
    assert str(request.url) == f"{URL}/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    sent = json.loads(request.content)
    assert sent["model"] == "gpt-test" and sent["messages"] == list(REQUEST.messages)
    assert (sent["temperature"], sent["max_tokens"]) == (0.5, 20)
    assert sent["top_k"] == 5  # unknown to the SDK: travels in extra_body


async def test_usage_details_may_be_missing(provider_for: Callable[..., OpenAIProvider]) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    completion = await provider_for(reply(200, body(usage=usage))).complete(REQUEST)
    assert (completion.cached_tokens, completion.reasoning_tokens) == (None, None)
    no_usage = await provider_for(reply(200, body(usage=None))).complete(REQUEST)
    assert (no_usage.prompt_tokens, no_usage.completion_tokens) == (None, None)
    assert no_usage.request_id is None


async def test_sdk_retries_are_off(provider_for: Callable[..., OpenAIProvider]) -> None:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(503, json=error_body("busy"))

    with pytest.raises(ServerError):
        await provider_for(handler).complete(REQUEST)
    assert len(calls) == 1  # promptgrid owns retries


# ------------------------------------------------------------------ status mapping

QUOTA = error_body("You exceeded your current quota.", "insufficient_quota", "insufficient_quota")
RATE = error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded")


@pytest.mark.parametrize(
    ("status", "payload", "headers", "expected", "wait"),
    [
        pytest.param(
            429,
            RATE,
            {"retry-after-ms": "1500", "retry-after": "2"},
            RateLimited,
            1.5,
            id="429-retry-after-ms-preferred",
        ),
        pytest.param(429, RATE, {"retry-after": "3"}, RateLimited, 3.0, id="429-retry-after"),
        pytest.param(429, RATE, {}, RateLimited, None, id="429-no-retry-after"),
        pytest.param(429, QUOTA, {"retry-after": "20"}, QuotaExceeded, None, id="429-quota"),
        pytest.param(
            429,
            error_body("out", "insufficient_quota"),
            {},
            QuotaExceeded,
            None,
            id="429-quota-type-only",
        ),
        pytest.param(
            401, error_body("Incorrect API key"), {}, AuthenticationFailed, None, id="401"
        ),
        pytest.param(
            403, error_body("Region not supported"), {}, AuthenticationFailed, None, id="403"
        ),
        pytest.param(400, error_body("Bad temperature"), {}, BadRequest, None, id="400"),
        pytest.param(404, error_body("No such model"), {}, BadRequest, None, id="404"),
        pytest.param(422, error_body("Unprocessable"), {}, BadRequest, None, id="422"),
        pytest.param(418, error_body("teapot"), {}, BadRequest, None, id="other-4xx"),
        pytest.param(408, error_body("timeout"), {}, ServerError, None, id="408"),
        pytest.param(409, error_body("conflict"), {}, ServerError, None, id="409"),
        pytest.param(500, error_body("oops"), {}, ServerError, None, id="500"),
        pytest.param(503, error_body("busy"), {"retry-after": "4"}, ServerError, 4.0, id="503"),
    ],
)
async def test_status_mapping(
    provider_for: Callable[..., OpenAIProvider],
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str],
    expected: type[ProviderError],
    wait: float | None,
) -> None:
    headers = {"x-request-id": "req_err", "x-ratelimit-remaining-requests": "0", **headers}
    with pytest.raises(expected) as caught:
        await provider_for(reply(status, payload, headers)).complete(REQUEST)
    error = caught.value
    assert type(error) is expected
    assert error.http_status == status and error.request_id == "req_err"
    assert error.retry_after == wait
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert payload["error"]["message"] in error.message and str(status) in error.message
    assert isinstance(error.__cause__, openai.APIStatusError)


async def test_non_json_error_body(provider_for: Callable[..., OpenAIProvider]) -> None:
    with pytest.raises(ServerError, match="502"):
        await provider_for(reply(502, content=b"<html>Bad Gateway</html>")).complete(REQUEST)


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after-ms": "soon", "retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "whenever"}) is None
    assert retry_after({}) is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after({"retry-after": date}, now=now) == 30


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"retry-after": "-5"}, id="negative"),
        pytest.param({"retry-after": "0"}, id="zero"),
        pytest.param({"retry-after": "nan"}, id="nan"),
        pytest.param({"retry-after": "inf"}, id="infinite"),
        pytest.param({"retry-after-ms": "-1"}, id="negative-ms"),
        pytest.param({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, id="past-date"),
        pytest.param({"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"}, id="bad-date"),
    ],
)
def test_unusable_retry_after_falls_back_to_backoff(headers: dict[str, str]) -> None:
    # A server saying "retry now" must not be hammered: None means exponential backoff.
    assert retry_after(headers, now=1_700_000_000.0) is None


# ------------------------------------------------------------------ broken answers


@pytest.mark.parametrize(
    ("handler", "match"),
    [
        pytest.param(
            reply(200, content=b'{"choices": [', headers={"content-type": "application/json"}),
            "not a chat completion",
            id="malformed-json",
        ),
        pytest.param(reply(200, {"foo": 1}), "no choices", id="not-a-completion"),
        pytest.param(reply(200, body(choices=[])), "no choices", id="empty-choices"),
        pytest.param(
            reply(
                200,
                body(
                    choices=[
                        {
                            "index": 0,
                            "finish_reason": None,
                            "message": {"role": "assistant", "content": "Re"},
                        }
                    ]
                ),
            ),
            "truncated",
            id="no-finish-reason",
        ),
        pytest.param(
            reply(200, body(choices=[{"index": 0, "finish_reason": "stop"}])),
            "not a chat completion",
            id="no-message",
        ),
        pytest.param(
            reply(200, content=b'{"id": "\xff\xfe\xfa"}', headers=JSON),
            "not a chat completion",
            id="invalid-utf8",
        ),
        pytest.param(reply(200, content=b"[1, 2]", headers=JSON), "not a chat", id="array"),
        pytest.param(reply(200, content=b"42", headers=JSON), "not a chat", id="number"),
        pytest.param(reply(200, content=b"null", headers=JSON), "not a chat", id="null"),
        pytest.param(reply(200, content=b"", headers=JSON), "not a chat", id="empty-body"),
        pytest.param(
            reply(200, body(choices="lots"), headers=JSON), "not a chat", id="choices-a-string"
        ),
        pytest.param(
            reply(200, body(choices=[{"index": 0, "finish_reason": "stop", "message": 7}])),
            "not a chat completion",
            id="message-a-number",
        ),
    ],
)
async def test_malformed_answers(
    provider_for: Callable[..., OpenAIProvider], handler: Handler, match: str
) -> None:
    with pytest.raises(MalformedResponse, match=match):
        await provider_for(handler).complete(REQUEST)


async def test_transport_timeout(provider_for: Callable[..., OpenAIProvider]) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("read timed out", request=request)

    with pytest.raises(RequestTimeout):
        await provider_for(handler).complete(REQUEST)


def _raise_from(cause: BaseException, request: httpx2.Request) -> httpx2.Response:
    # What the SDK's aiohttp transport does with every aiohttp connection error.
    try:
        raise cause
    except BaseException as exc:
        raise httpx2.ConnectTimeout(str(exc), request=request) from exc


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        pytest.param(aiohttp.ServerDisconnectedError(), ConnectionFailed, id="dropped"),
        pytest.param(ConnectionResetError("reset by peer"), ConnectionFailed, id="reset"),
        pytest.param(aiohttp.SocketTimeoutError("read"), RequestTimeout, id="read-timeout"),
        pytest.param(
            aiohttp.ConnectionTimeoutError("connect"), RequestTimeout, id="connect-timeout"
        ),
    ],
)
async def test_aiohttp_connect_timeout_is_told_from_a_drop(
    provider_for: Callable[..., OpenAIProvider], cause: BaseException, expected: type
) -> None:
    with pytest.raises(expected):
        await provider_for(lambda request: _raise_from(cause, request)).complete(REQUEST)


async def test_whole_answer_deadline(provider_for: Callable[..., OpenAIProvider]) -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        import asyncio

        await asyncio.sleep(5)  # cancelled by the provider's deadline after 10 ms
        return httpx2.Response(200, json=body())

    with pytest.raises(RequestTimeout, match=r"0\.01 s"):
        await provider_for(handler, timeout_s=0.01).complete(REQUEST)


async def test_connection_failure(provider_for: Callable[..., OpenAIProvider]) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError(f"refused (key {KEY})", request=request)

    with pytest.raises(ConnectionFailed) as caught:
        await provider_for(handler).complete(REQUEST)
    assert "refused" in caught.value.message and KEY not in caught.value.message


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    """A Server-Sent Events body of chat chunks."""
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + (["data: [DONE]\n\n"] if done else [])
    return "".join(lines).encode()


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m-1",
            "choices": [choice], **extra}  # fmt: skip


async def test_stream_is_read_to_its_end(provider_for: Callable[..., OpenAIProvider]) -> None:
    seen: list[dict[str, Any]] = []
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    stream = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Re"}),
        chunk({"content": "x"}, "stop"),
        {**chunk({}), "choices": [], "usage": usage},
    )

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(200, content=stream, headers={"content-type": "text/event-stream"})

    streaming = Request(URL, "gpt-test", REQUEST.messages, {"stream": True})
    done = await provider_for(handler).complete(streaming)
    assert seen[0]["stream"] is True and seen[0]["stream_options"] == {"include_usage": True}
    assert (done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens) == (
        "Rex", "stop", 5, 2,
    )  # fmt: skip
    assert done.ttft_s is not None and done.ttft_s >= 0 and done.resolved_model == "m-1"


async def test_a_stream_cut_short_is_malformed(
    provider_for: Callable[..., OpenAIProvider],
) -> None:
    cut = sse(chunk({"content": "Re"}), done=False)  # no finish_reason, no [DONE]
    handler = reply(200, content=cut, headers={"content-type": "text/event-stream"})
    streaming = Request(URL, "gpt-test", REQUEST.messages, {"stream": True})
    with pytest.raises(MalformedResponse, match="truncated"):
        await provider_for(handler).complete(streaming)


# ------------------------------------------------------------------ the key


async def test_key_echoed_anywhere_is_scrubbed(
    provider_for: Callable[..., OpenAIProvider],
) -> None:
    headers = {"x-request-id": f"req-{KEY}", "x-ratelimit-limit-requests": KEY}
    answer = body(model=f"model-{KEY}")
    answer["choices"][0]["message"]["content"] = f"your key is {KEY}"
    completion = await provider_for(reply(200, answer, headers)).complete(REQUEST)
    values = [completion.text, completion.request_id, completion.resolved_model,
              *completion.rate_limits.values()]  # fmt: skip
    assert all(KEY not in (v or "") for v in values) and "***" in (completion.text or "")
    with pytest.raises(ServerError) as caught:
        await provider_for(reply(503, error_body(f"bad {KEY}"), headers)).complete(REQUEST)
    error = caught.value
    assert KEY not in f"{error} {error.request_id} {error.headers} {error.args}"


async def test_key_never_in_messages(provider_for: Callable[..., OpenAIProvider]) -> None:
    echo = error_body(
        f"Incorrect API key provided: {KEY}.", "invalid_request_error", "invalid_api_key"
    )
    with pytest.raises(AuthenticationFailed) as caught:
        await provider_for(reply(401, echo)).complete(REQUEST)
    assert KEY not in str(caught.value) and "***" in str(caught.value)


# ------------------------------------------------------------------ every SDK exception

_REQ = httpx2.Request("POST", f"{URL}/chat/completions")


def _response(status: int, payload: Any = None) -> httpx2.Response:
    return httpx2.Response(status, json=payload or {}, request=_REQ)


def _status(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    return cls("failed", response=_response(status), body=None)


# Each class openai exports -> the error it becomes, or None where create() cannot raise it.
# A new openai exception fails test_every_openai_exception_is_accounted_for until added here.
SDK_EXCEPTIONS: dict[str, tuple[Callable[[], BaseException] | None, type[ProviderError] | None]] = {
    "OpenAIError": (lambda: openai.OpenAIError("odd"), BadRequest),
    "APIError": (lambda: openai.APIError("stream broke", _REQ, body=None), ServerError),
    "APIStatusError": (lambda: _status(openai.APIStatusError, 418), BadRequest),
    "BadRequestError": (lambda: _status(openai.BadRequestError, 400), BadRequest),
    "AuthenticationError": (lambda: _status(openai.AuthenticationError, 401), AuthenticationFailed),
    "OAuthError": (
        lambda: openai.OAuthError(response=_response(401), body=None),
        AuthenticationFailed,
    ),
    "PermissionDeniedError": (
        lambda: _status(openai.PermissionDeniedError, 403),
        AuthenticationFailed,
    ),
    "NotFoundError": (lambda: _status(openai.NotFoundError, 404), BadRequest),
    "ConflictError": (lambda: _status(openai.ConflictError, 409), ServerError),
    "UnprocessableEntityError": (lambda: _status(openai.UnprocessableEntityError, 422), BadRequest),
    "RateLimitError": (lambda: _status(openai.RateLimitError, 429), RateLimited),
    "InternalServerError": (lambda: _status(openai.InternalServerError, 500), ServerError),
    "APIConnectionError": (lambda: openai.APIConnectionError(request=_REQ), ConnectionFailed),
    "APITimeoutError": (lambda: openai.APITimeoutError(_REQ), RequestTimeout),
    "APIResponseValidationError": (
        lambda: openai.APIResponseValidationError(_response(200), {"x": 1}),
        MalformedResponse,
    ),
    # Raised by the structured-output helpers (completions.parse), not by create():
    "LengthFinishReasonError": (
        lambda: openai.LengthFinishReasonError(completion=ChatCompletion.construct()),
        None,
    ),
    "ContentFilterFinishReasonError": (None, None),
    # Webhooks, realtime websockets, module-level client: other APIs entirely.
    "InvalidWebhookSignatureError": (None, None),
    "WebSocketConnectionClosedError": (None, None),
    "WebSocketQueueFullError": (None, None),
    "_AmbiguousModuleClientUsageError": (None, None),
}


def test_every_openai_exception_is_accounted_for() -> None:
    # vars(), not dir()/getattr(): openai's lazy module proxies would import half the SDK.
    exported = {
        name
        for name, obj in vars(openai).items()
        if issubclass(type(obj), type) and issubclass(obj, BaseException)
    }
    assert exported == set(SDK_EXCEPTIONS), "map the new openai exceptions in providers/openai.py"


@pytest.mark.parametrize("name", sorted(n for n, (make, want) in SDK_EXCEPTIONS.items() if want))
def test_sdk_exception_translation(name: str) -> None:
    make, expected = SDK_EXCEPTIONS[name]
    assert make is not None and expected is not None
    exc = make()
    assert isinstance(exc, getattr(openai, name))
    assert type(translate(exc)) is expected


def test_foreign_errors_translate_too() -> None:
    assert isinstance(
        translate(openai.LengthFinishReasonError(completion=ChatCompletion.construct())),
        ProviderError,
    )


# ------------------------------------------------------------------ endpoint and client


@pytest.mark.parametrize(
    ("arg", "env", "expected"),
    [
        pytest.param("http://a.test/v1/", "http://b.test/v1", "http://a.test/v1", id="argument"),
        pytest.param(None, "http://b.test/v1//", "http://b.test/v1", id="environment"),
        pytest.param(None, None, DEFAULT_BASE_URL, id="default"),
        pytest.param("  ", "", DEFAULT_BASE_URL, id="blank"),
    ],
)
def test_resolve_base_url(
    monkeypatch: pytest.MonkeyPatch, arg: str | None, env: str | None, expected: str
) -> None:
    if env is None:
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    else:
        monkeypatch.setenv("OPENAI_BASE_URL", env)
    assert resolve_base_url(arg) == expected


async def test_default_transport_is_aiohttp() -> None:
    provider = OpenAIProvider(base_url=URL, api_key=KEY)
    try:
        http = provider._client._client
        assert isinstance(http, openai.DefaultAioHttpClient)
        assert http._transport.limits.max_connections >= 1000  # type: ignore[attr-defined]
    finally:
        await provider.aclose()


async def test_aclose_closes_the_client() -> None:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(reply(200, body())))
    provider = OpenAIProvider(base_url=URL, api_key=KEY, http_client=client)
    await provider.aclose()
    assert client.is_closed


@pytest.mark.slow
def test_engine_and_runner_do_not_import_openai() -> None:
    code = (
        "import sys, promptgrid.engine.scheduler, promptgrid.runner, promptgrid.providers; "
        "assert 'openai' not in sys.modules, 'openai imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_a_server_echoing_the_url_credentials_is_scrubbed() -> None:
    url = "http://user:hunter22pw@llm.test/v1?api-key=topsecret123"
    said = "seen user:hunter22pw, hunter22pw and topsecret123"
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(reply(200, body(
        choices=[{"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": said}}]))))  # fmt: skip
    provider = OpenAIProvider(base_url=url, api_key=KEY, http_client=client)
    try:
        completion = await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert completion.text == "seen ***, *** and ***"
