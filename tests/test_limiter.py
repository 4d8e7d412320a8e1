"""EndpointLimiter: FIFO admission, pauses, reconciliation, learning — on a fake clock.

Unit tests patch the running loop's ``time()`` (as aiolimiter's own tests do) and move it with
``clock.advance``; asyncio's timers then fire. The end-to-end scenarios run on
:class:`VirtualTimeLoop`, whose clock jumps to the next timer whenever the loop would block, so
minutes of simulated traffic take milliseconds and nothing ever really sleeps.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from unittest import mock

import pytest

from promptgrid.engine.attempts import call_with_retry
from promptgrid.engine.limiter import (
    Admission,
    Bucket,
    EndpointLimiter,
)
from promptgrid.errors import BadRequest, RateLimited
from promptgrid.providers.base import Completion, Request
from promptgrid.tokens import IMAGE_TOKENS, estimate_prompt_tokens

T = TypeVar("T")

# ------------------------------------------------------------------ clocks


class FakeClock:
    """The running loop's clock, moved only by the test."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    async def advance(self, seconds: float = 0.0, *, rounds: int = 50) -> None:
        """Move time forward, then let the loop run ``rounds`` times: due timers fire, and the
        line hands over about once per round."""
        self.now += seconds
        for _ in range(rounds):
            await asyncio.sleep(0)


@pytest.fixture
async def clock() -> AsyncIterator[FakeClock]:
    fake = FakeClock()
    with mock.patch.object(asyncio.get_running_loop(), "time", lambda: fake.now):
        yield fake


async def at_once(clock: FakeClock, awaitable: Awaitable[T]) -> T:
    """Await something that must not wait for time (a hang would otherwise be silent)."""
    task = asyncio.ensure_future(awaitable)
    await clock.advance()
    assert task.done(), "it had to wait"
    return task.result()


class _AutoJumpSelector(selectors.DefaultSelector):
    """Instead of blocking until the next timer, jump the loop's clock to it."""

    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        self.loop.now += 1e-6  # every loop iteration costs a little time, as on a real clock
        if not events and timeout:
            self.loop.now += timeout
        elif not events and timeout is None:
            raise RuntimeError("deadlock: nothing ready and no timer scheduled")
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on simulated time (public API only: a selector and ``time()``)."""

    def __init__(self) -> None:
        selector = _AutoJumpSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0

    def time(self) -> float:
        return self.now


def run_virtual(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def spawn(limiter: EndpointLimiter, tokens: int, **kw: int) -> asyncio.Task[Admission]:
    return asyncio.ensure_future(limiter.acquire(tokens, **kw))


# ------------------------------------------------------------------ pure functions


def test_estimate_prompt_tokens() -> None:
    assert estimate_prompt_tokens([]) == 3
    assert estimate_prompt_tokens([{"role": "user", "content": "abcd" * 10}]) == 3 + 4 + 10
    assert estimate_prompt_tokens([{"role": "user", "content": "abcde"}]) == 3 + 4 + 2  # rounds up
    parts = [{"type": "text", "text": "abcd" * 2}, {"type": "image_url", "image_url": {}}]
    assert estimate_prompt_tokens([{"role": "user", "content": parts}]) == 3 + 4 + 2 + IMAGE_TOKENS
    low = [{"type": "image_url", "image_url": {"url": "x", "detail": "low"}}]
    assert estimate_prompt_tokens([{"role": "user", "content": low}]) == 3 + 4 + 85
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history = [{"role": "assistant", "content": None, "tool_calls": [call]}]
    assert estimate_prompt_tokens(history) == 3 + 4 + 1  # "f{}": 3 characters
    assert estimate_prompt_tokens([{"role": "assistant", "content": None}]) == 3 + 4


# ------------------------------------------------------------------ construction and check


async def test_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="rpm"):
        EndpointLimiter(rpm=0, tpm=None, max_concurrency=None)
    with pytest.raises(ValueError, match="max_concurrency"):
        EndpointLimiter(rpm=None, tpm=None, max_concurrency=-1)


def test_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        EndpointLimiter(rpm=1, tpm=None, max_concurrency=None)


async def test_check_and_acquire_refuse_oversize_requests() -> None:
    limiter = EndpointLimiter(rpm=None, tpm=1000, max_concurrency=None, learn=False)
    assert limiter.check(1000) is None
    problem = limiter.check(1001)
    assert problem is not None and "1001" in problem and "1000" in problem
    with pytest.raises(BadRequest, match="1001"):
        await limiter.acquire(1001)
    assert EndpointLimiter(rpm=5, tpm=None, max_concurrency=None).check(10**9) is None


# ------------------------------------------------------------------ admission order and waits


async def test_request_bucket_bursts_then_paces(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=3, tpm=None, max_concurrency=None, learn=False)
    tasks = [spawn(limiter, 0) for _ in range(5)]
    await clock.advance()
    assert [t.done() for t in tasks] == [True, True, True, False, False]  # a minute's burst
    await clock.advance(19.9)
    assert not tasks[3].done()
    await clock.advance(0.2)  # 3 per minute: one every 20 s
    assert tasks[3].done() and not tasks[4].done()
    await clock.advance(20)
    assert tasks[4].done()


async def test_a_bare_bucket_serves_whoever_fits_first(clock: FakeClock) -> None:
    # The fact that makes the line necessary: waiting on a bucket alone, a large request starves
    # behind small ones (aiolimiter behaves the same way, serving the smallest first).
    bucket = Bucket(1000, 60)
    await bucket.acquire(1000)
    big = asyncio.ensure_future(bucket.acquire(900))
    await clock.advance()
    smalls = [asyncio.ensure_future(bucket.acquire(50)) for _ in range(5)]
    await clock.advance(15.1)  # 251 tokens leaked: room for the small ones only
    assert all(s.done() for s in smalls) and not big.done()
    await clock.advance(60)
    assert big.done()


async def test_line_is_first_come_first_served(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=1000, max_concurrency=None, learn=False)
    (await limiter.acquire(1000)).release(None)  # empty the bucket
    order: list[str] = []

    async def take(name: str, tokens: int) -> None:
        await limiter.acquire(tokens)
        order.append(name)

    big = asyncio.ensure_future(take("big", 900))
    await clock.advance()
    smalls = [asyncio.ensure_future(take(f"small{i}", 50)) for i in range(5)]
    await clock.advance(30)  # 500 leaked: the small ones would fit, but the big one is first
    assert order == []
    await clock.advance(24.1)  # 900 leaked
    assert order == ["big"]
    await clock.advance(15.1)  # 250 more
    assert order == ["big", *[f"small{i}" for i in range(5)]]
    assert big.done() and all(s.done() for s in smalls)


async def test_retry_ticket_keeps_its_place(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=1, tpm=None, max_concurrency=None, learn=False)
    first = await limiter.acquire(0)
    head, *later = [spawn(limiter, 0) for _ in range(3)]
    await clock.advance()
    retry = spawn(limiter, 0, ticket=first.ticket)  # arrives last, but was first in line
    await clock.advance(60.1)
    assert head.done() and not retry.done()  # the head was already waiting on the bucket
    await clock.advance(60)
    assert retry.done() and not any(t.done() for t in later)  # ahead of all the others


async def test_concurrency_slots(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=2, learn=False)
    a, b = await limiter.acquire(1), await limiter.acquire(1)
    third = spawn(limiter, 1)
    await clock.advance()
    assert not third.done()
    a.release(None)
    await clock.advance()
    assert third.done()
    with b:  # the context manager releases too
        pass
    with third.result():
        pass
    await at_once(clock, limiter.acquire(1))


async def test_pause_blocks_everyone_until_it_ends(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None, learn=False)
    limiter.pause(5)
    limiter.pause(1)  # never shortens
    tasks = [spawn(limiter, 1) for _ in range(3)]
    await clock.advance(4.9)
    assert not any(t.done() for t in tasks)
    limiter.pause(2)  # extends: now until t+6.9
    await clock.advance(0.2)
    assert not any(t.done() for t in tasks)
    await clock.advance(1.9)
    assert all(t.done() for t in tasks)


async def test_pause_while_waiting_for_a_bucket(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=1, tpm=None, max_concurrency=None, learn=False)
    await limiter.acquire(0)
    waiting = spawn(limiter, 0)
    await clock.advance(30)
    limiter.pause(60)  # a 429 came back while the head waited for the bucket
    await clock.advance(31)
    assert not waiting.done()  # the bucket has room, but the endpoint is paused
    await clock.advance(30)
    assert waiting.done()


async def test_cancelled_head_gives_back_and_passes_the_line(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=100, max_concurrency=1, learn=False)
    (await limiter.acquire(100)).release(None)
    head, nxt = spawn(limiter, 60), spawn(limiter, 30)
    await clock.advance()
    head.cancel()
    await clock.advance(18.1)  # 30 leaked: enough for the next one, whose turn it now is
    assert head.cancelled() and nxt.done()


# ------------------------------------------------------------------ reconciliation


async def test_release_gives_back_unused_tokens(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=1000, max_concurrency=None, learn=False)
    admission = await limiter.acquire(600)
    admission.release(100)
    admission.release(0)  # twice: no effect
    await at_once(clock, limiter.acquire(900))  # 100 + 900 fit


async def test_release_without_usage_keeps_the_reservation(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=1000, max_concurrency=None, learn=False)
    (await limiter.acquire(600)).release(None)
    waiting = spawn(limiter, 500)
    await clock.advance()
    assert not waiting.done()


async def test_release_charges_extra_usage(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=1000, max_concurrency=None, learn=False)
    (await limiter.acquire(100)).release(700)  # the estimate was low
    waiting = spawn(limiter, 400)
    await clock.advance()
    assert not waiting.done()
    await clock.advance(6.1)  # 100 leaked
    assert waiting.done()


async def test_a_usage_report_counts_as_one_full_bucket_at_most(clock: FakeClock) -> None:
    tpm = 1_000_000  # 16,667 tokens a second
    limiter = EndpointLimiter(rpm=None, tpm=tpm, max_concurrency=None, learn=False)
    (await limiter.acquire(100)).release(10**12)  # one answer said it used 10^12 tokens
    waiting = spawn(limiter, 100)
    await clock.advance()
    assert not waiting.done()  # the bucket is full...
    await clock.advance(100 / (tpm / 60))
    assert waiting.done()  # ...for as long as 100 tokens take to leak, not 1,900 years


async def test_a_bucket_holds_one_bucket_at_most(clock: FakeClock) -> None:
    bucket = Bucket(1000, 60)
    bucket.set_level(1e12)
    assert bucket.level() == 1000 and bucket.delay(1000) == pytest.approx(60)
    bucket.set_level(math.nan)  # no level at all: not an empty bucket
    assert bucket.level() == 1000


async def test_a_header_report_counts_as_one_full_bucket_at_most(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=1000, max_concurrency=None)
    (await limiter.acquire(10)).release(10)
    limiter.observe({"x-ratelimit-limit-tokens": "1000",
                     "x-ratelimit-remaining-tokens": "-1000000000000"})  # fmt: skip
    limiter.observe({"x-ratelimit-limit-tokens": "1e-300",  # a learned limit: its own bucket
                     "x-ratelimit-remaining-tokens": "0"})  # fmt: skip
    waiting = spawn(limiter, 500)
    await clock.advance(30.0)  # half a minute leaks 500 of a declared 1000 per minute
    assert waiting.done()


async def test_refund_wakes_the_waiting_head_at_once(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=1000, max_concurrency=None, learn=False)
    first = await limiter.acquire(1000)
    waiting = spawn(limiter, 500)
    await clock.advance()
    assert not waiting.done()
    first.release(200)  # no time passes
    await clock.advance()
    assert waiting.done()


async def test_bucket_levels_leak_and_can_be_set(clock: FakeClock) -> None:
    bucket = Bucket(10, 1)
    await bucket.acquire(10)
    assert bucket.level() == 10
    bucket.set_level(4)
    assert bucket.delay(6) == 0 and bucket.delay(7) > 0
    await clock.advance(1)  # 10 per second: empty again
    assert bucket.level() == 0
    bucket.set_level(-5)
    assert bucket.level() == 0


# ------------------------------------------------------------------ learning

RL = {
    "x-ratelimit-limit-requests": "300",
    "x-ratelimit-remaining-requests": "299",
    "x-ratelimit-reset-requests": "200ms",
}


async def test_probe_then_learned_burst_then_pace(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    probe = await limiter.acquire(10)
    others = [spawn(limiter, 10) for _ in range(300)]
    await clock.advance(5)
    assert not any(t.done() for t in others)  # nobody goes before the probe is back
    probe.release(10)
    limiter.observe({k.upper(): v for k, v in RL.items()})  # header names in any case
    assert limiter.rpm == 300 and limiter.tpm is None
    await clock.advance(rounds=400)
    assert sum(t.done() for t in others) == 299  # the server said 299 remain
    await clock.advance(0.21)  # 300 per minute: one more every 0.2 s
    assert all(t.done() for t in others)


async def test_no_headers_means_no_limit_after_the_probe(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    probe = await limiter.acquire(1)
    others = [spawn(limiter, 1) for _ in range(50)]
    limiter.observe({})
    probe.release(None)
    await clock.advance(rounds=100)
    assert all(t.done() for t in others) and limiter.rpm is None


@pytest.mark.parametrize("limit", ["-1", "0", "lots"])
async def test_azure_style_headers_teach_nothing(clock: FakeClock, limit: str) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    limiter.observe(
        {
            "x-ratelimit-limit-requests": limit,
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-limit-tokens": limit,
        }
    )
    assert limiter.rpm is None and limiter.tpm is None


async def test_cancelled_probe_hands_over_to_the_next(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    limiter.pause(10)
    probe, nxt, third = spawn(limiter, 1), spawn(limiter, 1), spawn(limiter, 1)
    await clock.advance()
    probe.cancel()  # cancelled before it was sent
    await clock.advance(10.1)
    assert probe.cancelled() and nxt.done()  # the next one became the probe...
    assert not third.done()  # ...and the rest wait for it to come back
    nxt.result().release(None)
    await clock.advance()
    assert third.done()


async def test_learns_tokens_and_syncs_level(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    (await limiter.acquire(1)).release(None)
    limiter.observe({"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "400"})
    assert limiter.tpm == 1000
    await at_once(clock, limiter.acquire(400))
    waiting = spawn(limiter, 1)
    await clock.advance()
    assert not waiting.done()
    assert limiter.check(1001) is not None  # a learned limit is a limit too


async def test_declared_limit_wins_but_level_follows_the_server(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=10, tpm=None, max_concurrency=None)
    limiter.observe({"x-ratelimit-limit-requests": "300", "x-ratelimit-remaining-requests": "150"})
    assert limiter.rpm == 10
    (await limiter.acquire(1)).release(None)  # the probe (tpm unknown)
    tasks = [spawn(limiter, 1) for _ in range(5)]
    await clock.advance()
    # The server is half used, so is our bucket: 5 of 10, then the probe took one more.
    assert sum(t.done() for t in tasks) == 4


async def test_server_report_never_lowers_our_level(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=60, tpm=1, max_concurrency=None)  # all declared: no probe
    for _ in range(60):
        await limiter.acquire(0)
    limiter.observe({"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "60"})
    waiting = spawn(limiter, 0)  # our own requests count even if the server has not seen them
    await clock.advance()
    assert not waiting.done()


async def test_report_credits_refill_since_counted(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=60, tpm=1, max_concurrency=None)
    sent = clock.now
    await clock.advance(20)
    limiter.observe(
        {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0"}, sent_at=sent
    )
    tasks = [spawn(limiter, 0) for _ in range(11)]
    await clock.advance()
    # Full when counted, taken as half-way through the 20 s round trip: 10 s at 1/s refilled.
    assert sum(t.done() for t in tasks) == 10


async def test_learned_limit_follows_changes(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None)
    limiter.observe(RL)
    limiter.observe({**RL, "x-ratelimit-limit-requests": "600"})
    assert limiter.rpm == 600


async def test_learn_false_ignores_headers(clock: FakeClock) -> None:
    limiter = EndpointLimiter(rpm=None, tpm=None, max_concurrency=None, learn=False)
    limiter.observe(RL)
    assert limiter.rpm is None
    await at_once(clock, asyncio.gather(*(limiter.acquire(1) for _ in range(10))))  # no probe


# ------------------------------------------------------------------ scenarios, simulated


class SimServer:
    """OpenAI-like buckets that start full and refill at limit/60 per second, charging
    prompt + max_tokens up front; a request they cannot cover gets a 429 and costs nothing."""

    def __init__(self, *, rpm: int | None, tpm: int | None, seed: int, latency=(0.05, 0.5)) -> None:  # type: ignore[no-untyped-def]
        self.limits = {"requests": rpm, "tokens": tpm}
        self.level = {k: float(v or 0) for k, v in self.limits.items()}
        self.stamp = 0.0
        self.rng = random.Random(seed)
        self.latency = latency
        self.rejected = 0
        self.charged = 0
        self.admitted_at: dict[str, float] = {}

    def headers(self) -> dict[str, str]:
        h = {}
        for kind, limit in self.limits.items():
            if limit:
                h[f"x-ratelimit-limit-{kind}"] = str(limit)
                h[f"x-ratelimit-remaining-{kind}"] = str(int(self.level[kind]))
        return h

    async def complete(self, request: Request) -> Completion:
        loop = asyncio.get_running_loop()
        leg = self.rng.uniform(*self.latency) / 2
        await asyncio.sleep(leg)
        now = loop.time()
        for kind, limit in self.limits.items():
            if limit:
                self.level[kind] = min(limit, self.level[kind] + (now - self.stamp) * limit / 60)
        self.stamp = now
        prompt = len(request.messages[0]["content"]) // 4 + 1
        need = {"requests": 1, "tokens": prompt + int(request.params["max_tokens"])}
        for kind, limit in self.limits.items():
            if limit and self.level[kind] < need[kind]:
                self.rejected += 1
                wait = (need[kind] - self.level[kind]) * 60 / limit
                headers = self.headers()
                await asyncio.sleep(leg)
                raise RateLimited("429", http_status=429, retry_after=wait, headers=headers)
        for kind, limit in self.limits.items():
            if limit:
                self.level[kind] -= need[kind]
        self.charged += need["tokens"]
        self.admitted_at[request.endpoint] = now
        headers = self.headers()
        await asyncio.sleep(leg)
        return Completion(
            "ok",
            "stop",
            prompt_tokens=prompt,
            completion_tokens=int(request.params["max_tokens"]) // 2,
            rate_limits=headers,
        )

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    ("declared", "learn"),
    [
        pytest.param(True, False, id="rpm-declared"),
        pytest.param(True, True, id="rpm-declared-learning"),
        pytest.param(False, True, id="learned-from-headers"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_300_rpm_server_with_a_full_bucket(declared: bool, learn: bool, seed: int) -> None:
    # 400 calls to a server allowing 300 at once, then 5 per second: ideal is 20 s.
    async def scenario() -> tuple[float, int, int]:
        server = SimServer(rpm=300, tpm=None, seed=seed)
        limiter = EndpointLimiter(
            rpm=300 if declared else None, tpm=None, max_concurrency=None, learn=learn
        )
        request = Request("e", "m", ({"role": "user", "content": "hi"},), {"max_tokens": 20})
        outcomes = await asyncio.gather(
            *(
                call_with_retry(request, server, limiter, max_attempts=6, max_wait_s=60)
                for _ in range(400)
            )
        )
        failed = sum(o.error is not None for o in outcomes)
        return asyncio.get_running_loop().time(), server.rejected, failed

    random.seed(seed)  # tenacity's jitter
    virtual_s, rejected, failed = run_virtual(scenario)
    assert failed == 0
    assert virtual_s <= 1.15 * 20  # simulated seconds, not wall-clock
    assert rejected <= 0.05 * 400


class Inflating:
    """Answers at once; the requests whose content says so report ``tokens`` prompt tokens."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.done: dict[str, float] = {}

    async def complete(self, request: Request) -> Completion:
        await asyncio.sleep(0.1)
        content = request.messages[0]["content"]
        prompt = self.tokens if content.startswith("inflated") else 10
        self.done[content] = asyncio.get_running_loop().time()
        return Completion("ok", "stop", prompt_tokens=prompt, completion_tokens=5)

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    ("tokens", "inflated"),
    [pytest.param(10**12, 1, id="one-answer-of-1e12"), pytest.param(10**9, 100, id="100-of-1e9")],
)
def test_inflated_usage_reports_never_stall_the_run(tokens: int, inflated: int) -> None:
    # tpm 1,000,000 and 300 calls of ~20 tokens: a minute's bucket holds them all at once.
    async def scenario() -> Inflating:
        server = Inflating(tokens)
        limiter = EndpointLimiter(rpm=None, tpm=1_000_000, max_concurrency=50, learn=False)
        contents = [f"inflated {i}" for i in range(inflated)] + [f"q {i}" for i in range(300)]
        requests = [
            Request("e", "m", ({"role": "user", "content": c},), {"max_tokens": 5})
            for c in contents
        ]
        outcomes = await asyncio.gather(
            *(call_with_retry(r, server, limiter, max_attempts=1, max_wait_s=60) for r in requests)
        )
        assert all(o.error is None for o in outcomes)
        return server

    server = run_virtual(scenario)
    assert max(server.done.values()) <= 60 + 10  # simulated: about one refill period at most


@pytest.mark.parametrize("declared", [True, False], ids=["tpm-declared", "tpm-learned"])
def test_tpm_bound_mixed_prompts_use_the_limit_fairly(declared: bool) -> None:
    tpm, rate = 60_000, 1000.0  # tokens per minute, per second
    rng = random.Random(7)
    sizes = [rng.choice([40, 400, 4000, 20_000]) for _ in range(200)]  # characters

    async def scenario() -> SimServer:
        server = SimServer(rpm=None, tpm=tpm, seed=7)
        limiter = EndpointLimiter(rpm=None, tpm=tpm if declared else None, max_concurrency=None)
        requests = [
            Request(str(i), "m", ({"role": "user", "content": "x" * n},), {"max_tokens": 200})
            for i, n in enumerate(sizes)
        ]
        outcomes = await asyncio.gather(
            *(call_with_retry(r, server, limiter, max_attempts=6, max_wait_s=60) for r in requests)
        )
        assert all(o.error is None for o in outcomes)
        return server

    random.seed(7)
    server = run_virtual(scenario)
    last = max(server.admitted_at.values())
    assert server.charged / (tpm + rate * last) >= 0.90  # the burst, plus the refill until then
    cumulative = 0
    for i, n in enumerate(sizes):
        cumulative += n // 4 + 1 + 200
        fair = max(0.0, (cumulative - tpm) / rate)  # when a perfect FIFO bucket would admit it
        assert server.admitted_at[str(i)] <= 2 * fair + 1.0, i  # 1 s: round trips, the probe
    assert server.rejected <= 0.05 * len(sizes)
