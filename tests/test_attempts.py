"""call_with_retry: which errors are retried, how long it waits, what the limiter is told.

A scripted provider plays each attempt's result; ``sleep`` is a recorder, so the waits are
asserted, never waited (the style of tenacity's own tests).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import pytest

from promptgrid.engine.attempts import (
    DEFAULT_RATE_LIMIT_PAUSE_S,
    Attempt,
    Outcome,
    call_with_retry,
)
from promptgrid.engine.limiter import EndpointLimiter
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
from promptgrid.providers.base import Completion, Request
from promptgrid.tokens import DEFAULT_OUTPUT_TOKENS, estimate_prompt_tokens

MESSAGES = ({"role": "user", "content": "Name five dogs."},)
REQUEST = Request("http://test/v1", "gpt-test", MESSAGES, {"max_tokens": 100})
OK = Completion(
    "Rex",
    "stop",
    prompt_tokens=12,
    completion_tokens=3,
    rate_limits={"x-ratelimit-remaining-requests": "9"},
)


class ScriptedProvider:
    """Answers each call with the next scripted result (a Completion, or an error to raise);
    each call takes ``latency`` on the running loop's clock when one is patched in."""

    def __init__(
        self,
        *script: Completion | BaseException,
        clock: list[float] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.script = list(script)
        self.calls = 0
        self.clock = clock
        self.latency = latency

    async def complete(self, request: Request) -> Completion:
        self.calls += 1
        if self.clock is not None:
            self.clock[0] += self.latency
        result = self.script.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    async def aclose(self) -> None:
        pass


class SpyAdmission:
    def __init__(self, log: list[tuple[Any, ...]], ticket: int) -> None:
        self.log, self.ticket = log, ticket

    def release(self, used_tokens: int | None = None) -> None:
        self.log.append(("release", used_tokens))

    def __enter__(self) -> SpyAdmission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append(("exit",))


class SpyLimiter:
    """Records what call_with_retry asks of its limiter, in order."""

    def __init__(self, refuse: ProviderError | None = None, tpm: int | None = None) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.tpm = tpm
        self.refuse = refuse
        self.tickets = iter(range(100, 200))

    async def acquire(self, tokens: int, *, ticket: int | None = None) -> SpyAdmission:
        self.log.append(("acquire", tokens, ticket))
        if self.refuse is not None:
            raise self.refuse
        return SpyAdmission(self.log, next(self.tickets) if ticket is None else ticket)

    def check(self, tokens: int) -> str | None:
        return None if self.tpm is None or tokens <= self.tpm else "too big"

    def observe(self, headers: Mapping[str, str], *, sent_at: float | None = None) -> None:
        self.log.append(("observe", dict(headers)))

    def pause(self, seconds: float) -> None:
        self.log.append(("pause", seconds))


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def run(
    provider: ScriptedProvider,
    limiter: Any = None,
    *,
    max_attempts: int = 6,
    max_wait_s: float = 60.0,
    request: Request = REQUEST,
) -> tuple[Outcome, Sleeps]:
    if limiter is None:
        limiter = SpyLimiter()  # a real one would really wait out the pause after a 429
    sleeps = Sleeps()
    outcome = await call_with_retry(
        request, provider, limiter, max_attempts=max_attempts, max_wait_s=max_wait_s, sleep=sleeps
    )
    return outcome, sleeps


# ------------------------------------------------------------------ what is retried


async def test_success_at_once() -> None:
    provider = ScriptedProvider(OK)
    outcome, sleeps = await run(provider)
    assert outcome.completion is OK and outcome.error is None
    assert [(a.number, a.error) for a in outcome.attempts] == [(1, None)]
    assert sleeps == [] and provider.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RateLimited("429"), id="rate-limited"),
        pytest.param(ServerError("503", http_status=503), id="server-error"),
        pytest.param(RequestTimeout("slow"), id="timeout"),
        pytest.param(ConnectionFailed("reset"), id="connection"),
        pytest.param(MalformedResponse("truncated"), id="malformed"),
    ],
)
async def test_retryable_errors_are_retried(error: ProviderError) -> None:
    outcome, sleeps = await run(ScriptedProvider(error, OK))
    assert outcome.completion is OK and outcome.error is None
    assert [a.error for a in outcome.attempts] == [error, None]
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(BadRequest("400", http_status=400), id="bad-request"),
        pytest.param(AuthenticationFailed("401", http_status=401), id="auth"),
        pytest.param(QuotaExceeded("quota", http_status=429, retry_after=1.0), id="quota"),
    ],
)
async def test_fatal_errors_are_not_retried(error: ProviderError) -> None:
    provider = ScriptedProvider(error, OK)
    outcome, sleeps = await run(provider)
    assert outcome.error is error and outcome.completion is None
    assert provider.calls == 1 and sleeps == []


async def test_run_stopper_ends_the_loop_with_its_error() -> None:
    stopper = AuthenticationFailed("key revoked", http_status=401)
    provider = ScriptedProvider(ServerError("502"), stopper, OK)
    outcome, _ = await run(provider)
    assert outcome.error is stopper and outcome.error.stops_run
    assert [a.number for a in outcome.attempts] == [1, 2] and provider.calls == 2


async def test_gives_up_with_our_last_error_not_tenacitys() -> None:
    errors = [ServerError(f"503 #{i}", http_status=503) for i in range(3)]
    outcome, sleeps = await run(ScriptedProvider(*errors), max_attempts=3)
    assert outcome.error is errors[-1]  # not tenacity.RetryError
    assert [(a.number, a.error) for a in outcome.attempts] == list(
        zip([1, 2, 3], errors, strict=True)
    )
    assert len(sleeps) == 2


async def test_cancellation_is_never_retried() -> None:
    limiter = SpyLimiter()
    provider = ScriptedProvider(asyncio.CancelledError(), OK)
    with pytest.raises(asyncio.CancelledError):
        await run(provider, limiter)
    assert provider.calls == 1
    assert limiter.log[-1] == ("exit",)  # the admission was released on the way out


# ------------------------------------------------------------------ how long it waits


async def test_waits_what_the_server_asks_capped_by_max_wait() -> None:
    script = [
        RateLimited("429", retry_after=2.5),
        ServerError("503", retry_after=0.25),
        RateLimited("429", retry_after=500.0),
        OK,
    ]
    outcome, sleeps = await run(ScriptedProvider(*script), max_wait_s=30)
    assert outcome.completion is OK
    assert sleeps == [2.5, 0.25, 30.0]


async def test_backoff_has_full_jitter_doubling_up_to_max_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    errors = [ServerError("503") for _ in range(5)]
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    _, highest = await run(ScriptedProvider(*errors, OK), max_wait_s=5)
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    _, lowest = await run(ScriptedProvider(*errors, OK), max_wait_s=5)
    assert highest == [1, 2, 4, 5, 5]  # windows of 1, 2, 4, 8, 16 s, capped at max_wait_s
    assert lowest == [0, 0, 0, 0, 0]  # full jitter: anywhere from zero


async def test_backoff_stays_in_its_windows() -> None:
    random.seed(3)
    errors = [ConnectionFailed("reset") for _ in range(7)]
    _, sleeps = await run(ScriptedProvider(*errors, OK), max_attempts=8, max_wait_s=20)
    assert len(sleeps) == 7
    for n, wait in enumerate(sleeps):
        assert 0 <= wait <= min(20, 2**n)
    assert len(set(sleeps)) == 7  # jittered, not fixed


# ------------------------------------------------------------------ what the limiter is told


async def test_limiter_conversation() -> None:
    limited = RateLimited(
        "429", http_status=429, retry_after=None, headers={"x-ratelimit-remaining-requests": "0"}
    )
    failed = ServerError("500", headers={})
    limiter = SpyLimiter()
    outcome, _ = await run(ScriptedProvider(limited, failed, OK), limiter, max_wait_s=60)
    tokens = estimate_prompt_tokens(MESSAGES) + 100
    assert outcome.completion is OK
    assert limiter.log == [
        ("acquire", tokens, None),
        ("release", 0),  # refused: it used nothing
        ("observe", {"x-ratelimit-remaining-requests": "0"}),
        ("pause", DEFAULT_RATE_LIMIT_PAUSE_S),  # no retry-after: a short default
        ("exit",),
        ("acquire", tokens, 100),  # a retry keeps its place in line
        ("release", None),  # failed: the server may have counted it, keep the reservation
        ("observe", {}),
        ("exit",),
        ("acquire", tokens, 100),
        ("release", 12 + 100),  # charged: the real prompt plus max_tokens
        ("observe", OK.rate_limits),
        ("exit",),
    ]


async def test_pause_is_capped_by_max_wait() -> None:
    limiter = SpyLimiter()
    await run(ScriptedProvider(RateLimited("429", retry_after=900.0), OK), limiter, max_wait_s=45)
    assert ("pause", 45) in limiter.log


@pytest.mark.parametrize(
    ("params", "completion", "reserved", "charged"),
    [
        pytest.param({"max_tokens": 50, "n": 2}, OK, 100, 12 + 100, id="bounded"),
        pytest.param({}, OK, DEFAULT_OUTPUT_TOKENS, 12 + 3, id="unbounded-real-usage"),
        pytest.param({}, Completion("x", "stop"), DEFAULT_OUTPUT_TOKENS, None, id="no-usage"),
        pytest.param({"max_tokens": 2}, OK, 2, 12 + 2, id="usage-over-the-bound"),
    ],
)
async def test_reservation_and_reconciliation(
    params: dict[str, Any], completion: Completion, reserved: int, charged: int | None
) -> None:
    limiter = SpyLimiter()
    request = Request("e", "m", MESSAGES, params)
    await run(ScriptedProvider(completion), limiter, request=request)
    assert limiter.log[0] == ("acquire", estimate_prompt_tokens(MESSAGES) + reserved, None)
    assert limiter.log[1] == ("release", charged)


async def test_default_output_reserve_never_refuses_a_request() -> None:
    limiter = SpyLimiter(tpm=100)  # smaller than prompt + DEFAULT_OUTPUT_TOKENS
    outcome, _ = await run(ScriptedProvider(OK), limiter, request=Request("e", "m", MESSAGES))
    assert outcome.completion is OK
    assert limiter.log[0] == ("acquire", estimate_prompt_tokens(MESSAGES), None)


async def test_refused_admission_is_an_attempt_that_was_never_sent() -> None:
    too_big = BadRequest("this request needs about 999999 tokens")
    provider = ScriptedProvider(OK)
    outcome, sleeps = await run(provider, SpyLimiter(refuse=too_big))
    assert outcome.error is too_big and provider.calls == 0 and sleeps == []
    assert outcome.attempts == (Attempt(1, too_big, 0.0),)


async def test_a_429_pauses_every_caller_of_the_real_limiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(asyncio.get_running_loop(), "time", lambda: now[0])

    async def settle() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None, learn=False)
    provider = ScriptedProvider(RateLimited("429", retry_after=7.0), OK)
    cell = asyncio.ensure_future(run(provider, limiter))
    await settle()
    other = asyncio.ensure_future(limiter.acquire(1))  # another cell of the same endpoint
    await settle()
    assert provider.calls == 1 and not other.done() and not cell.done()
    now[0] = 7.01
    await settle()
    assert other.done() and cell.done()
    outcome, sleeps = cell.result()
    assert outcome.completion is OK and sleeps == [7.0]


# ------------------------------------------------------------------ history


async def test_attempt_history_and_final_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [50.0]
    monkeypatch.setattr(asyncio.get_running_loop(), "time", lambda: now[0])
    script = [ServerError("502", http_status=502), RequestTimeout("slow"), OK]
    provider = ScriptedProvider(*script, clock=now, latency=0.25)
    outcome, _ = await run(provider)
    assert [(a.number, a.error, a.latency_s) for a in outcome.attempts] == [
        (1, script[0], 0.25),
        (2, script[1], 0.25),
        (3, None, 0.25),
    ]
    assert outcome.latency_s == 0.25
    assert outcome.completion is OK


async def test_concurrent_calls_do_not_share_retry_state() -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None, learn=False)
    flaky = [ScriptedProvider(ServerError("503"), ServerError("503"), OK) for _ in range(5)]
    outcomes = await asyncio.gather(*(run(p, limiter, max_attempts=3) for p in flaky))
    for outcome, sleeps in outcomes:
        assert outcome.completion is OK and [a.number for a in outcome.attempts] == [1, 2, 3]
        assert len(sleeps) == 2
