"""promptgrid.testing.FaultServer, driven by the real openai SDK over a loopback socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from promptgrid.testing import FaultServer, RemoteFaultServer, go_duration, spawn_fault_server

SRC = str(Path(__file__).resolve().parents[1] / "src")


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
    assert u is not None and u.prompt_tokens == len("be briefhello world") // 4 + 1
    assert u.completion_tokens == len("echo: hello world") // 4 + 1
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details and u.prompt_tokens_details.cached_tokens == 0
    assert u.completion_tokens_details and u.completion_tokens_details.reasoning_tokens == 0
    stats = server.stats()
    assert stats["requests"] == 2 and stats["answered"]["hello world"] == 2
    assert stats["by_outcome"]["200"] == 2 and stats["by_key"]["sk-test"] == 2
    server.configure(model_suffix="-2024-07-18")
    assert (await ask(client, "x", n=2)).model == "gpt-4o-mini-2024-07-18"


async def test_no_limits_no_ratelimit_headers(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="m", messages=user("a"))
    assert raw.headers["x-request-id"]
    assert not [h for h in raw.headers if h.startswith("x-ratelimit")]


async def test_ratelimit_headers(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.configure(rpm=100, tpm=10_000)
    raw = await client.chat.completions.with_raw_response.create(
        model="m", messages=user("hi"), max_tokens=50
    )
    h = raw.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-limit-tokens"]) == ("100", "10000")
    assert h["x-ratelimit-remaining-requests"] == "99"
    assert h["x-ratelimit-remaining-tokens"] == str(10_000 - (len("hi") // 4 + 1 + 50))
    assert h["x-ratelimit-reset-requests"] == "600ms"  # 1 request at 100/60 per second
    assert h["x-ratelimit-reset-tokens"] == "306ms"  # 51 tokens at 10000/60 per second
    assert raw.parse().choices[0].message.content == "echo: hi"


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
async def test_status_faults(
    client: openai.AsyncOpenAI, server: FaultServer, status: str, exc: type[openai.APIStatusError]
) -> None:
    server.script([status])
    with pytest.raises(exc) as err:
        await ask(client, "q")
    assert err.value.status_code == int(status) and "message" in err.value.body  # type: ignore[operator]


async def test_quota(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.script(["quota"])
    with pytest.raises(openai.RateLimitError) as err:
        await ask(client, "q")
    assert err.value.body["code"] == "insufficient_quota"  # type: ignore[index]
    assert err.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert "retry-after" not in err.value.response.headers


@pytest.mark.parametrize("transport", ["httpx2", "aiohttp"])
async def test_drop(server: FaultServer, transport: str) -> None:
    http = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="k", max_retries=0, http_client=http
    ) as client:
        await ask(client, "warm")  # a kept-alive connection must not be retried silently
        server.script(["drop"])
        started = time.monotonic()
        with pytest.raises(openai.APIConnectionError) as err:
            await ask(client, "q", timeout=5)
        assert time.monotonic() - started < 1  # an immediate error, not a hang
        # The SDK's aiohttp transport maps ServerDisconnectedError to httpx2.ConnectTimeout, so a
        # dropped connection surfaces as APITimeoutError (a subclass of APIConnectionError).
        expected = openai.APITimeoutError if transport == "aiohttp" else openai.APIConnectionError
        assert type(err.value) is expected
        assert (await ask(client, "after")).choices[0].message.content == "echo: after"
    stats = server.stats()
    assert stats["requests"] == 3 and stats["by_outcome"]["drop"] == 1


async def test_malformed(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.script(["malformed"])
    with pytest.raises(json.JSONDecodeError):  # the SDK lets it escape, outside openai.APIError
        await ask(client, "q")


async def test_truncated(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.script(["truncated"])
    resp = await ask(client, "a longer question")
    assert resp.choices[0].finish_reason is None
    full = "echo: a longer question"
    assert resp.choices[0].message.content == full[: len(full) // 2]
    assert server.stats()["answered"]["a longer question"] == 0


async def test_stall_times_out_and_stop_is_fast() -> None:
    server = FaultServer(stall_s=30.0).start()
    try:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
            server.script(["stall"])
            with pytest.raises(openai.APITimeoutError):
                await ask(c, "q", timeout=0.2)
            server.script(["stall"])
            pending = asyncio.create_task(ask(c, "pending", timeout=20))
            while server.stats()["injected"]["stall"] < 2:  # wait for the stall to begin
                await asyncio.sleep(0.005)
            started = time.monotonic()
            await asyncio.to_thread(server.stop)
            assert time.monotonic() - started < 1.0
            with pytest.raises(openai.APIConnectionError):
                await pending
    finally:
        server.stop()
    assert server.stats()["injected"]["stall"] == 2


async def test_stall_short_then_answers(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.configure(stall_s=0.05)
    server.script(["stall"])
    assert (await ask(client, "q")).choices[0].message.content == "echo: q"
    assert server.stats()["answered"]["q"] == 1


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


async def test_tpm_bucket(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    server.configure(tpm=100, rpm=1000)
    cost = len("q") // 4 + 1 + 40
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


async def test_fault_rates_are_deterministic(
    client: openai.AsyncOpenAI, server: FaultServer
) -> None:
    rates = {"429": 0.1, "5xx": 0.15, "drop": 0.02, "malformed": 0.02, "truncated": 0.05}
    server.configure(fault_rates=rates, seed=7)

    sem = asyncio.Semaphore(16)  # 120 fresh httpx2 connections at once would be slower

    async def one(i: int) -> None:
        async with sem:
            with contextlib.suppress(openai.APIError, json.JSONDecodeError):
                await ask(client, f"q{i}", timeout=5)

    runs = []
    for _ in range(2):
        server.reset()  # also reseeds the draws
        await asyncio.gather(*(one(i) for i in range(120)))
        runs.append(server.stats())
    assert runs[0]["by_outcome"] == runs[1]["by_outcome"]
    assert runs[0]["requests"] == 120 and runs[0]["in_flight"] == 0
    injected = runs[0]["injected"]
    assert set(injected) <= {"429", "500", "502", "503", "drop", "malformed", "truncated"}
    assert 20 <= sum(injected.values()) <= 65  # 34 % of 120 expected
    assert runs[0]["by_outcome"]["200"] == 120 - sum(injected.values())


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


async def test_http_control(client: openai.AsyncOpenAI, server: FaultServer) -> None:
    remote = RemoteFaultServer(server.base_url)
    assert remote.configure(rpm=600, latency_s=0.01)["rpm"] == 600
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


def test_spawned_process() -> None:
    async def call(base_url: str) -> str:
        async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0) as c:
            raw = await c.chat.completions.with_raw_response.create(model="m", messages=user("p"))
            assert raw.headers["x-ratelimit-limit-requests"] == "300"
            return raw.parse().choices[0].message.content or ""

    with spawn_fault_server(rpm=300, seed=0) as remote:
        assert remote.base_url.startswith("http://127.0.0.1:")
        assert asyncio.run(call(remote.base_url)) == "echo: p"
        stats = remote.stats()
        assert stats["requests"] == 1 and stats["answered"]["p"] == 1
        process = remote.process
    assert process is not None and process.returncode == 0


def test_command_line_ready_line() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
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
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:") and line.rstrip().endswith("/v1")
        assert RemoteFaultServer(line.split()[1]).configure()["fault_rates"] == {"429": 0.1}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
