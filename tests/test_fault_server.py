"""promptgrid.testing (the fault server), driven by the real openai SDK over a loopback socket,
by raw HTTP where the bytes matter, and by promptgrid's OpenAI provider for the new faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import types
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import fields
from email.message import Message
from pathlib import Path
from typing import Any

import openai
import pytest

import promptgrid.testing
from promptgrid import untrusted
from promptgrid.errors import MalformedResponse, RateLimited
from promptgrid.providers.base import Request
from promptgrid.providers.openai import OpenAIProvider
from promptgrid.testing import (
    FAULTS,
    FaultServer,
    RemoteFaultServer,
    go_duration,
    spawn_fault_server,
)
from promptgrid.tokens import estimate_prompt_tokens, estimate_text_tokens

SRC = str(Path(__file__).resolve().parents[1] / "src")
KEY = "sk-test-Zq7uEchoMe"  # distinctive, so a leak cannot hide in ordinary text
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
HANG = 30  # seconds: bounds waits that only a hang would exceed
BAD_RETRY_AFTERS = ["-5", "nan", "0", "Wed, 21 Oct 2015 07:28:00 GMT"]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(stall_s=5.0) as s:
        yield s


@pytest.fixture
async def client(server: FaultServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


async def ask(client: openai.AsyncOpenAI, text: str, **kw: Any) -> Any:
    return await client.chat.completions.create(model="gpt-4o-mini", messages=user(text), **kw)


def post(
    base_url: str, text: str = "q", *, key: str = "sk-test", raw: bytes | None = None
) -> tuple[int, Message, bytes]:
    """A raw ``POST /chat/completions``: (status, headers, body bytes), errors included."""
    body = raw if raw is not None else json.dumps({"model": "m", "messages": user(text)}).encode()
    req = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with NO_PROXY.open(req, timeout=HANG) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a condition another thread makes true; fails the test only on a hang."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), HANG)  # not asyncio.timeout: Python 3.10 is supported


def request(text: str = "q") -> Request:
    return Request(endpoint="test", model="gpt-4o-mini", messages=tuple(user(text)))


# -- the package ---------------------------------------------------------------------------------


def test_package_exports() -> None:
    names = promptgrid.testing.__all__
    assert names == sorted(names)
    public = {
        name
        for name, value in vars(promptgrid.testing).items()
        if not name.startswith("_") and name != "annotations"
        and not isinstance(value, types.ModuleType)
    }  # fmt: skip
    assert public == set(names) == {
        "FAULTS", "BatchControls", "FaultServer", "RemoteFaultServer", "go_duration",
        "spawn_fault_server",
    }  # fmt: skip
    assert FaultServer.__module__ == "promptgrid.testing.server"
    assert RemoteFaultServer.__module__ == "promptgrid.testing.spawn"
    assert spawn_fault_server.__module__ == "promptgrid.testing.spawn"
    assert go_duration.__module__ == "promptgrid.testing.buckets"
    for module in ("answers", "buckets", "core", "server", "settings", "spawn", "__main__"):
        doc = __import__(f"promptgrid.testing.{module}", fromlist=["_"]).__doc__
        assert doc and len(doc) > 100, module  # each module says why it exists


def test_faults_are_documented() -> None:
    assert {"bad_utf8", "garbage", "empty", "retry_after_bad", "malformed"} <= set(FAULTS)
    package_doc, server_doc = promptgrid.testing.__doc__ or "", FaultServer.__doc__ or ""
    for name, what in FAULTS.items():
        assert what, name
        assert name == "ok" or f'"{name}"' in package_doc, name
    for setting in ("bad_retry_after", "echo_key"):
        assert setting in server_doc
    with pytest.raises(TypeError):
        FAULTS["new"] = "read-only"  # type: ignore[index]


def test_go_duration() -> None:
    assert [go_duration(s) for s in (0, 0.012, 0.0001, 1, 360, 90.5, 3600, 59.9999)] == [
        "0s",
        "12ms",
        "1ms",
        "1s",
        "6m0s",
        "1m30.5s",
        "1h0m0s",
        "1m0s",
    ]


# -- answers, usage and rate limits --------------------------------------------------------------


@pytest.mark.slow
async def test_answer_and_usage(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    messages = [{"role": "system", "content": "be brief"}, *user("hello world")]
    resp = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    again = await ask(client, "hello world")
    assert resp.choices[0].message.content == "echo: hello world"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.id.startswith("chatcmpl-") and resp.id != again.id
    assert resp.model == "gpt-4o-mini" and resp.object == "chat.completion"
    assert resp._request_id  # type: ignore[attr-defined]
    u = resp.usage
    # promptgrid's one estimator: 3 priming + (4 + ceil(8/4)) + (4 + ceil(11/4)) = 16 ...
    assert u is not None and u.prompt_tokens == estimate_prompt_tokens(messages) == 16
    # ... and ceil(17/4) = 5 for the answer.
    assert u.completion_tokens == estimate_text_tokens("echo: hello world") == 5
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details and u.prompt_tokens_details.cached_tokens == 0
    assert u.completion_tokens_details and u.completion_tokens_details.reasoning_tokens == 0
    stats = server.stats()
    assert stats["requests"] == 2 and stats["answered"]["hello world"] == 2
    assert stats["by_outcome"]["200"] == 2 and stats["by_key"]["sk-test"] == 2
    server.configure(model_suffix="-2024-07-18")
    several = await ask(client, "x", n=2)
    assert several.model == "gpt-4o-mini-2024-07-18" and len(several.choices) == 2
    texts = [c.message.content for c in several.choices]
    assert texts == ["echo: x", "echo [1]: x"]  # distinct choices, one usage for the request
    assert several.usage.completion_tokens == sum(estimate_text_tokens(t) for t in texts)


@pytest.mark.slow
async def test_no_limits_no_ratelimit_headers(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="m", messages=user("a"))
    assert raw.headers["x-request-id"]
    assert not [h for h in raw.headers if h.startswith("x-ratelimit")]


@pytest.mark.slow
async def test_ratelimit_headers(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.configure(rpm=100, tpm=10_000)
    raw = await client.chat.completions.with_raw_response.create(
        model="m", messages=user("hi"), max_tokens=50
    )
    h = raw.headers
    cost = estimate_prompt_tokens(user("hi")) + 50
    assert cost == 58
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-limit-tokens"]) == ("100", "10000")
    assert h["x-ratelimit-remaining-requests"] == "99"
    assert h["x-ratelimit-remaining-tokens"] == str(10_000 - cost)
    assert h["x-ratelimit-reset-requests"] == "600ms"  # 1 request at 100/60 per second
    assert h["x-ratelimit-reset-tokens"] == "348ms"  # 58 tokens at 10000/60 per second
    assert raw.parse().choices[0].message.content == "echo: hi"


@pytest.mark.slow
async def test_rpm_bucket(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.configure(rpm=5)
    for i in range(5):
        await ask(client, f"q{i}")
    with pytest.raises(openai.RateLimitError) as err:
        await ask(client, "q5")
    body, headers = err.value.body, err.value.response.headers
    assert body["type"] == "requests" and body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert body["message"].startswith("Rate limit reached for gpt-4o-mini")  # type: ignore[index]
    assert int(headers["retry-after"]) >= 1 and 0 < int(headers["retry-after-ms"]) <= 12_000
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert server.stats()["rate_limited"] == {"requests": 1}
    # Buckets are per key: another key still has its full bucket.
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="sk-other", max_retries=0
    ) as other:
        raw = await other.chat.completions.with_raw_response.create(model="m", messages=user("o"))
        assert raw.headers["x-ratelimit-remaining-requests"] == "4"


@pytest.mark.slow
async def test_tpm_bucket(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.configure(tpm=100, rpm=1000)
    cost = estimate_prompt_tokens(user("q")) + 40  # charged up front: prompt + max_tokens * n
    first = await client.chat.completions.with_raw_response.create(
        model="m", messages=user("q"), max_tokens=40
    )
    assert first.headers["x-ratelimit-remaining-tokens"] == str(100 - cost)
    await ask(client, "q", max_completion_tokens=40)
    with pytest.raises(openai.RateLimitError) as err:
        await ask(client, "q", max_tokens=40)
    assert err.value.body["type"] == "tokens"  # type: ignore[index]
    h = err.value.response.headers
    # A rejected request consumes nothing (remaining may only have refilled a little).
    assert 0 <= int(h["x-ratelimit-remaining-tokens"]) - (100 - 2 * cost) <= 2
    assert int(h["x-ratelimit-remaining-requests"]) >= 997
    server.reset()  # buckets full again
    with pytest.raises(openai.RateLimitError) as big:  # more than the whole bucket: never passes
        await ask(client, "q", max_tokens=200)
    assert big.value.body["message"].startswith("Request too large")  # type: ignore[index]
    assert "retry-after" not in big.value.response.headers
    assert (await ask(client, "q", max_tokens=40)).choices[0].message.content == "echo: q"


@pytest.mark.slow
async def test_api_keys() -> None:
    with FaultServer(api_keys={"sk-good"}) as server:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="sk-bad", max_retries=0
        ) as bad:
            with pytest.raises(openai.AuthenticationError) as err:
                await ask(bad, "q")
        assert err.value.body["code"] == "invalid_api_key"  # type: ignore[index]
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="sk-good", max_retries=0
        ) as good:
            assert (await ask(good, "q")).choices[0].message.content == "echo: q"
        assert server.stats()["by_outcome"] == {"401": 1, "200": 1}


# -- the original faults -------------------------------------------------------------------------


@pytest.mark.slow
async def test_scripted_sequence(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.script(["503", "429", "ok"])
    with pytest.raises(openai.InternalServerError) as err5:
        await ask(client, "q")
    assert err5.value.status_code == 503 and err5.value.body["type"] == "server_error"  # type: ignore[index]
    with pytest.raises(openai.RateLimitError) as err:
        await ask(client, "q")
    headers = err.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("1", "1000")
    assert err.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert err.value.code == "rate_limit_exceeded" and err.value.request_id
    assert (await ask(client, "q")).choices[0].message.content == "echo: q"
    stats = server.stats()
    assert stats["by_outcome"] == {"503": 1, "429": 1, "200": 1}
    assert stats["answered"] == {"q": 1} and stats["pending_script"] == 0


@pytest.mark.parametrize(
    "status, exc",
    [
        ("400", openai.BadRequestError),
        ("404", openai.NotFoundError),
        ("422", openai.UnprocessableEntityError),
        ("504", openai.InternalServerError),
    ],
)
@pytest.mark.slow
async def test_status_faults(
    client: openai.AsyncOpenAI, server: FaultServer, status: str, exc: type[openai.APIStatusError]
) -> None:
    server.script([status])
    with pytest.raises(exc) as err:
        await ask(client, "q")
    assert err.value.status_code == int(status) and "message" in err.value.body  # type: ignore[operator]


@pytest.mark.slow
async def test_quota(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.script(["quota"])
    with pytest.raises(openai.RateLimitError) as err:
        await ask(client, "q")
    assert err.value.body["code"] == "insufficient_quota"  # type: ignore[index]
    assert err.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert "retry-after" not in err.value.response.headers


@pytest.mark.parametrize("transport", ["httpx2", "aiohttp"])
@pytest.mark.slow
async def test_drop(server: FaultServer, transport: str) -> None:
    http = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="k", max_retries=0, http_client=http
    ) as client:
        await ask(client, "warm")  # a kept-alive connection must not be retried silently
        server.script(["drop"])
        with pytest.raises(openai.APIConnectionError) as err:  # an error, not an answer or a hang
            await ask(client, "q", timeout=HANG)
        # The SDK's aiohttp transport maps ServerDisconnectedError to httpx2.ConnectTimeout, so a
        # dropped connection surfaces as APITimeoutError (a subclass of APIConnectionError).
        expected = openai.APITimeoutError if transport == "aiohttp" else openai.APIConnectionError
        assert type(err.value) is expected
        assert (await ask(client, "after")).choices[0].message.content == "echo: after"
    stats = server.stats()
    assert stats["requests"] == 3 and stats["by_outcome"]["drop"] == 1


@pytest.mark.slow
async def test_malformed(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.script(["malformed"])
    with pytest.raises(json.JSONDecodeError):  # the SDK lets it escape, outside openai.APIError
        await ask(client, "q")


@pytest.mark.slow
async def test_truncated(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.script(["truncated"])
    resp = await ask(client, "a longer question")
    assert resp.choices[0].finish_reason is None
    full = "echo: a longer question"
    assert resp.choices[0].message.content == full[: len(full) // 2]
    assert server.stats()["answered"]["a longer question"] == 0


@pytest.mark.slow
async def test_stall_times_out_and_stop_cancels_it() -> None:
    server = FaultServer(stall_s=3600.0).start()  # only a stop can end this stall
    thread = server._thread
    try:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
            server.script(["stall"])
            with pytest.raises(openai.APITimeoutError):
                await ask(c, "q", timeout=0.2)
            server.script(["stall"])
            pending = asyncio.create_task(ask(c, "pending", timeout=HANG))
            await until(lambda: server.stats()["injected"]["stall"] == 2)  # the stall has begun
            await asyncio.to_thread(server.stop)
            assert thread is not None and not thread.is_alive()  # the stall did not hold the stop
            with pytest.raises(openai.APIConnectionError):
                await pending
    finally:
        server.stop()
    assert server.stats()["injected"]["stall"] == 2


@pytest.mark.slow
async def test_stall_short_then_answers(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.configure(stall_s=0.05)
    server.script(["stall"])
    assert (await ask(client, "q")).choices[0].message.content == "echo: q"
    assert server.stats()["answered"]["q"] == 1


@pytest.mark.slow
async def test_script_for_content(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.script_for("cat", ["500", "500"])

    async def attempt(text: str) -> str:
        try:
            return (await ask(client, text)).choices[0].message.content or ""
        except openai.InternalServerError:
            return "500"

    first = await asyncio.gather(*(attempt(t) for t in ("dog", "a cat", "cow")))
    assert first == ["echo: dog", "500", "echo: cow"]
    assert [await attempt("a cat"), await attempt("a cat")] == ["500", "echo: a cat"]
    assert server.stats()["answered"] == {"dog": 1, "cow": 1, "a cat": 1}


@pytest.mark.slow
async def test_fault_rates_are_deterministic(
    client: openai.AsyncOpenAI, server: FaultServer
) -> None:
    rates = {
        "429": 0.1, "5xx": 0.15, "drop": 0.02, "malformed": 0.02, "truncated": 0.05,
        "bad_utf8": 0.02, "garbage": 0.02, "empty": 0.02, "retry_after_bad": 0.02,
    }  # fmt: skip
    server.configure(fault_rates=rates, seed=7)

    sem = asyncio.Semaphore(16)  # 120 fresh httpx2 connections at once would be slower

    async def one(i: int) -> None:
        async with sem:
            # ValueError: the SDK lets bad JSON and undecodable bytes escape as they are.
            with contextlib.suppress(openai.APIError, ValueError):
                await ask(client, f"q{i}", timeout=HANG)

    runs = []
    for _ in range(2):
        server.reset()  # also reseeds the draws
        await asyncio.gather(*(one(i) for i in range(120)))
        runs.append(server.stats())
    assert runs[0]["by_outcome"] == runs[1]["by_outcome"]
    assert runs[0]["requests"] == 120 and runs[0]["in_flight"] == 0
    injected = runs[0]["injected"]
    assert set(injected) <= {"429", "500", "502", "503", *rates}
    assert 25 <= sum(injected.values()) <= 75  # 42 % of 120 expected
    assert runs[0]["by_outcome"]["200"] == 120 - sum(injected.values())


# -- the new faults, byte by byte ----------------------------------------------------------------


@pytest.mark.slow
def test_bad_utf8_raw(server: FaultServer) -> None:
    server.script(["bad_utf8"])
    status, headers, body = post(server.base_url, "q")
    assert status == 200 and headers["content-type"] == "application/json"
    with pytest.raises(UnicodeDecodeError):
        body.decode()
    # Only the bytes are wrong: decoded leniently, it is a whole completion.
    answer = json.loads(body.decode(errors="replace"))
    assert answer["choices"][0]["message"]["content"] == "echo: q"
    stats = server.stats()
    assert stats["by_outcome"] == {"bad_utf8": 1} and stats["answered"] == {}


@pytest.mark.slow
def test_garbage_raw(server: FaultServer) -> None:
    server.script(["garbage"])
    status, headers, body = post(server.base_url)
    assert status == 200 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["choices"] == "lots" and "usage" not in answer
    assert server.stats()["by_outcome"] == {"garbage": 1}


@pytest.mark.slow
def test_empty_raw(server: FaultServer) -> None:
    server.script(["empty", "200"])
    status, headers, body = post(server.base_url)
    assert (status, body) == (200, b"") and headers["content-type"] == "application/json"
    assert json.loads(post(server.base_url)[2])["object"] == "chat.completion"  # then normal
    assert server.stats()["by_outcome"] == {"empty": 1, "200": 1}


@pytest.mark.slow
def test_hostile_answers_raw(server: FaultServer) -> None:
    server.configure(bad_usage=float("nan"))
    server.script(["deep_body", "error_surrogate", "surrogates", "bad_usage"])
    status, _, body = post(server.base_url)
    assert status == 200 and len(body) < 5_000 and body.count(b"[") == 2_000
    with pytest.raises(untrusted.TooDeep):  # on every Python: 3.13's json alone reads it
        untrusted.loads(body)
    status, _, body = post(server.base_url)
    assert status == 400 and b"Invalid request \\ud800" in body
    status, _, body = post(server.base_url)
    content = json.loads(body)["choices"][0]["message"]["content"]
    assert content == "echo: q ok\U0001f600 \ud800"  # JSON joins the escaped pair
    status, _, body = post(server.base_url)
    assert b'"prompt_tokens": NaN' in body and b'"cached_tokens": NaN' in body
    body = json.dumps({"model": "m", "messages": user("q"), "stream": True}).encode()
    server.script(["surrogates"])
    status, _, streamed = post(server.base_url, raw=body)
    assert b'ok\\ud83d"' in streamed and b'"\\ude00"' in streamed  # the pair split in two


@pytest.mark.parametrize("value", [None, *BAD_RETRY_AFTERS[1:]])
@pytest.mark.slow
def test_retry_after_bad_raw(value: str | None) -> None:
    with FaultServer() if value is None else FaultServer(bad_retry_after=value) as server:
        server.script(["retry_after_bad"])
        status, headers, body = post(server.base_url)
        assert status == 429
        assert headers["retry-after"] == (value or "-5")  # the default is negative
        assert "retry-after-ms" not in headers  # nothing usable to fall back on
        error = json.loads(body)["error"]
        assert (error["code"], error["type"]) == ("rate_limit_exceeded", "requests")
        stats = server.stats()
        assert stats["by_outcome"] == {"retry_after_bad": 1}
        assert stats["injected"] == {"retry_after_bad": 1} and stats["rate_limited"] == {}


@pytest.mark.slow
def test_echo_key_raw() -> None:
    with FaultServer(echo_key=True, rpm=1, api_keys={KEY}) as server:
        server.script(["ok", "503", "truncated"])
        responses = {
            "200": post(server.base_url, "q", key=KEY),
            "503": post(server.base_url, key=KEY),
            "truncated": post(server.base_url, "a longer question", key=KEY),
            "429": post(server.base_url, key=KEY),  # the rpm=1 bucket is empty by now
            "401": post(server.base_url, key=KEY + "x"),
            "400": post(server.base_url, key=KEY, raw=b"not json"),
        }
        for name, (status, headers, body) in responses.items():
            assert str(status) == name or name == "truncated", name
            assert KEY in headers["x-request-id"], name
            assert headers["x-ratelimit-limit-key"].startswith(KEY), name
            if status != 200:
                assert KEY in json.loads(body)["error"]["message"], name
        answer = json.loads(responses["200"][2])["choices"][0]["message"]["content"]
        assert answer == f"echo: q key={KEY}"
        cut = json.loads(responses["truncated"][2])["choices"][0]["message"]["content"]
        assert cut.endswith(f" key={KEY}")  # the whole key after the cut, never a prefix of it
        assert responses["200"][1]["x-ratelimit-limit-requests"] == "1"  # limits still readable
        server.configure(echo_key=False)
        status, headers, body = post(server.base_url, key=KEY + "x")
        assert KEY not in headers["x-request-id"] and KEY not in body.decode()


# -- the new faults through promptgrid's provider (the real SDK) ---------------------------------


@pytest.mark.parametrize("fault", ["bad_utf8", "garbage", "empty"])
@pytest.mark.slow
async def test_provider_refuses_broken_bodies(server: FaultServer, fault: str) -> None:
    server.script([fault])
    provider = OpenAIProvider(base_url=server.base_url, api_key=KEY)
    try:
        with pytest.raises(MalformedResponse) as err:
            await provider.complete(request())
        assert KEY not in str(err.value)
        assert (await provider.complete(request("again"))).text == "echo: again"  # still usable
    finally:
        await provider.aclose()
    assert server.stats()["by_outcome"] == {fault: 1, "200": 1}


@pytest.mark.parametrize("value", BAD_RETRY_AFTERS)
@pytest.mark.slow
async def test_provider_ignores_a_bad_retry_after(value: str) -> None:
    with FaultServer(bad_retry_after=value) as server:
        server.script(["retry_after_bad", "429"])
        provider = OpenAIProvider(base_url=server.base_url, api_key=KEY)
        try:
            with pytest.raises(RateLimited) as err:
                await provider.complete(request())
            assert err.value.retry_after is None  # fall back to backoff, not "retry now"
            assert err.value.headers["retry-after"] == value
            with pytest.raises(RateLimited) as usable:  # a good header is still honoured
                await provider.complete(request())
            assert usable.value.retry_after == 1.0
        finally:
            await provider.aclose()


@pytest.mark.slow
async def test_provider_never_keeps_an_echoed_key() -> None:
    with FaultServer(echo_key=True, rpm=600) as server:
        provider = OpenAIProvider(base_url=server.base_url, api_key=KEY)
        try:
            completion = await provider.complete(request())
            server.script(["429"])
            with pytest.raises(RateLimited) as err:
                await provider.complete(request())
        finally:
            await provider.aclose()
    values = [getattr(completion, f.name) for f in fields(completion)]
    kept = repr(values) + repr(err.value.headers) + str(err.value) + repr(err.value.request_id)
    assert KEY not in kept
    assert completion.text == "echo: q key=***"
    assert completion.request_id is not None and completion.request_id.endswith("-***")
    assert completion.rate_limits["x-ratelimit-limit-key"] == "***"
    assert completion.rate_limits["x-ratelimit-limit-requests"] == "600"
    assert err.value.headers["x-ratelimit-limit-key"] == "***" and "key=***" in str(err.value)


# -- control: validation, HTTP, child process and command line -----------------------------------


@pytest.mark.slow
def test_validation() -> None:
    with pytest.raises(ValueError):
        FaultServer(fault_rates={"nope": 0.1})
    with pytest.raises(ValueError):
        FaultServer(fault_rates={"429": 0.8, "5xx": 0.5})
    with FaultServer() as server:
        with pytest.raises(ValueError):
            server.script(["explode"])
        with pytest.raises(TypeError):
            server.configure(rps=3)
        server.script(["bad_utf8", "garbage", "empty", "retry_after_bad", "200"])
        assert server.stats()["pending_script"] == 5
        config = server.configure(bad_retry_after=0, echo_key=1)
        assert (config["bad_retry_after"], config["echo_key"]) == ("0", True)


@pytest.mark.slow
async def test_http_control(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    remote = RemoteFaultServer(server.base_url)
    assert remote.configure(rpm=600, latency_s=0.01)["rpm"] == 600
    assert remote.config()["bad_retry_after"] == "-5" and remote.config()["echo_key"] is False
    remote.script(["503"])
    remote.script_for("cat", ["502"])
    with pytest.raises(openai.InternalServerError) as err:
        await ask(client, "cat")
    assert err.value.status_code == 502
    with pytest.raises(openai.InternalServerError):
        await ask(client, "q")
    await ask(client, "q")
    stats = remote.stats()
    assert stats["by_outcome"] == {"502": 1, "503": 1, "200": 1}
    assert stats["answered"]["q"] == 1 and stats["answered"]["nothing"] == 0
    remote.reset_stats()
    assert remote.stats()["requests"] == 0
    with pytest.raises(ValueError, match="unknown fault"):
        remote.script(["explode"])
    with pytest.raises(ValueError, match="unknown FaultServer settings"):
        remote.configure(rps=3)
    remote.reset()


@pytest.mark.slow
def test_spawned_process_runs_the_package() -> None:
    async def call(base_url: str) -> str:
        async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0) as c:
            raw = await c.chat.completions.with_raw_response.create(model="m", messages=user("p"))
            assert raw.headers["x-ratelimit-limit-requests"] == "300"
            return raw.parse().choices[0].message.content or ""

    with spawn_fault_server(rpm=300, seed=0, bad_retry_after="nan") as remote:
        process = remote.process
        assert process is not None
        assert process.args[:3] == [sys.executable, "-m", "promptgrid.testing"]  # type: ignore[index]
        assert remote.base_url.startswith("http://127.0.0.1:")
        assert asyncio.run(call(remote.base_url)) == "echo: p"
        remote.script(["retry_after_bad"])
        status, headers, _ = post(remote.base_url)
        assert (status, headers["retry-after"]) == (429, "nan")
        remote.configure(echo_key=True)
        assert post(remote.base_url, key=KEY)[1]["x-ratelimit-limit-key"] == KEY
        stats = remote.stats()
        assert stats["requests"] == 3 and stats["answered"]["p"] == 1
    assert process.returncode == 0


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
def test_command_line_start_up_stays_light() -> None:
    """The child a benchmark spawns must not pay for pandas or the SDK."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "promptgrid.testing", "--help"],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=HANG,
        check=True,
    )
    assert "--bad-retry-after" in done.stdout and "--echo-key" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "promptgrid.testing.core" in imported
    heavy = {m for m in imported if m.split(".")[0] in {"pandas", "numpy", "openai", "httpx2"}}
    assert heavy == set()


@pytest.mark.slow
def test_command_line_ready_line() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promptgrid.testing",
            "--port",
            "0",
            "--rpm",
            "300",
            "--tpm",
            "0",
            "--latency",
            "0",
            "--fault-rates",
            '{"429": 0.1}',
            "--seed",
            "0",
            "--bad-retry-after",
            "nan",
            "--echo-key",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_cli_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:") and line.rstrip().endswith("/v1")
        config = RemoteFaultServer(line.split()[1]).configure()
        assert config["fault_rates"] == {"429": 0.1} and config["rpm"] == 300
        assert (config["bad_retry_after"], config["echo_key"]) == ("nan", True)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=HANG) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
