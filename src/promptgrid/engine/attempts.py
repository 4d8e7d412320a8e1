"""One cell's attempts: admission, the call, and tenacity deciding whether and when to retry.

Each attempt takes fresh capacity from the endpoint's limiter (a retry is a new request to the
server), releases it with the real usage, and teaches the limiter from the response headers.
Only :class:`~promptgrid.errors.RetryableError` is retried (listed positively, so
``CancelledError`` never is). The wait before a retry is the server's ``retry_after`` when it
sent one, otherwise exponential backoff with full jitter; both are capped at ``max_wait_s``.
A 429 also pauses the whole endpoint, since every other request would get one too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from ..errors import ProviderError, RateLimited, RetryableError
from ..providers.base import Completion, Provider, Request
from ..tokens import DEFAULT_OUTPUT_TOKENS, estimate_prompt_tokens
from ..untrusted import count as token_count
from .limiter import EndpointLimiter, Sleep

__all__ = ["Attempt", "Outcome", "Sleep", "call_with_retry", "retrying", "wait_retry_after"]

#: How long a 429 without ``retry-after`` pauses the endpoint.
DEFAULT_RATE_LIMIT_PAUSE_S = 1.0
#: First backoff window; it doubles per attempt (1, 2, 4, ... s) up to ``max_wait_s``.
BACKOFF_MULTIPLIER_S = 1.0


@dataclass(frozen=True)
class Attempt:
    """One attempt, for the store's history: its number (from 1), its error, its latency."""

    number: int
    error: ProviderError | None
    latency_s: float


@dataclass(frozen=True)
class Outcome:
    """How a cell ended: a completion or the last error, every attempt, the last latency."""

    completion: Completion | None
    error: ProviderError | None
    attempts: tuple[Attempt, ...]
    latency_s: float


def _charged_tokens(request: Request, completion: Completion) -> int | None:
    """The tokens the server counted against TPM for this call, or None if it did not say
    (or said something that is no count of tokens).

    OpenAI charges the prompt plus ``max_tokens`` up front, so a bounded request is charged its
    real prompt plus its whole output bound: only our prompt estimate (or, unbounded, the
    default output reserve) is corrected. Giving back unused ``max_tokens`` would over-admit.
    However large the count, the bucket takes at most one bucket's worth of it.
    """
    prompt = token_count(completion.prompt_tokens)
    output = request.max_output_tokens()
    if output is not None:
        return None if prompt is None else prompt + output
    answered = token_count(completion.completion_tokens)
    return None if prompt is None or answered is None else prompt + answered


class wait_retry_after(wait_base):  # named like tenacity's strategies
    """Wait what the server asked (``retry_after``), else ``fallback``; never over ``max_s``."""

    def __init__(self, fallback: wait_base, max_s: float) -> None:
        self.fallback = fallback
        self.max_s = max_s

    def __call__(self, retry_state: RetryCallState) -> float:
        """The wait before the next attempt."""
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(error, ProviderError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_s)
        return min(self.fallback(retry_state), self.max_s)


def retrying(*, max_attempts: int, max_wait_s: float, sleep: Sleep) -> AsyncRetrying:
    """The retry policy, for one call or one remote step (a fresh one each time: tenacity keeps
    per-call state in it): only :class:`RetryableError` is tried again, ``max_attempts`` times
    at most, after the server's ``retry_after`` or else exponential backoff with full jitter,
    both capped at ``max_wait_s``; the last error is raised as itself (``reraise``), never as
    tenacity's ``RetryError``. The online calls and the batch driver's steps both use it."""
    return AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        retry=retry_if_exception_type(RetryableError),
        wait=wait_retry_after(
            wait_random_exponential(multiplier=BACKOFF_MULTIPLIER_S, max=max_wait_s), max_wait_s
        ),
        sleep=sleep,
        reraise=True,
    )


async def call_with_retry(
    request: Request,
    provider: Provider,
    limiter: EndpointLimiter,
    *,
    max_attempts: int,
    max_wait_s: float,
    sleep: Sleep = asyncio.sleep,
) -> Outcome:
    """Run ``request`` until it succeeds, fails for good, or ``max_attempts`` are used.

    Returns an :class:`Outcome` carrying the completion or promptgrid's own last error (never
    tenacity's ``RetryError``). Auth and quota errors (``RunStopper``) end it at once; the caller
    stops the run. ``sleep`` is injected so tests can record the waits instead of waiting.
    """
    loop = asyncio.get_running_loop()
    prompt = estimate_prompt_tokens(request.messages)
    output = request.max_output_tokens()
    tokens = prompt + (DEFAULT_OUTPUT_TOKENS if output is None else output)
    if output is None and limiter.check(tokens) is not None:
        tokens = prompt  # the default reserve is a guess: never refuse a request because of it
    attempts: list[Attempt] = []
    ticket: int | None = None  # the first attempt's place in line; retries keep it

    async def attempt(number: int) -> Completion:
        nonlocal ticket
        try:
            admission = await limiter.acquire(tokens, ticket=ticket)
        except ProviderError as err:  # too large for the endpoint: recorded, never sent
            attempts.append(Attempt(number, err, 0.0))
            raise
        ticket = admission.ticket
        with admission:
            started = loop.time()
            try:
                completion = await provider.complete(request)
            except ProviderError as err:
                attempts.append(Attempt(number, err, loop.time() - started))
                # A 429 was refused, so it used no tokens; other failures keep their reservation
                # (the server may have counted them). Release before observing: the server's
                # headers then correct any refund.
                admission.release(0 if isinstance(err, RateLimited) else None)
                limiter.observe(err.headers, sent_at=started)
                if isinstance(err, RateLimited):
                    pause = (
                        DEFAULT_RATE_LIMIT_PAUSE_S if err.retry_after is None else err.retry_after
                    )
                    limiter.pause(min(pause, max_wait_s))
                raise
            attempts.append(Attempt(number, None, loop.time() - started))
            admission.release(_charged_tokens(request, completion))
            limiter.observe(completion.rate_limits, sent_at=started)
            return completion

    completion: Completion | None = None
    error: ProviderError | None = None
    # Most calls succeed at once: make the first attempt before building tenacity's machinery
    # (~50 us a call). A first failure is replayed as tenacity's attempt 1, so every retry
    # decision is still tenacity's, made in one place.
    first: ProviderError | None = None
    try:
        completion = await attempt(1)
    except ProviderError as err:
        first = err
    if first is not None:
        policy = retrying(max_attempts=max_attempts, max_wait_s=max_wait_s, sleep=sleep)
        try:
            async for state in policy:
                with state:
                    number = state.retry_state.attempt_number
                    if number == 1:
                        raise first
                    completion = await attempt(number)
        except ProviderError as err:
            error = err
    history = tuple(attempts)
    return Outcome(completion, error, history, history[-1].latency_s if history else 0.0)
