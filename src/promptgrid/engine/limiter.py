"""Per-endpoint admission control: who may send the next request, and when.

An attempt is admitted by :meth:`EndpointLimiter.acquire`, which waits, in this order, for

1. **the line** — a lock granted in ticket order, held only by the head of the line. A bucket
   shared by many waiters serves whoever fits first (aiolimiter serves the smallest amount
   first), so without the line a large prompt starves behind a stream of small ones; with it,
   only the head ever waits on a bucket, in arrival order. A retry
   keeps the ticket of its first attempt, so a 429 does not send a prompt to the back of the line;
2. **the probe** (learning only) — until the first attempt has come back, nobody else is sent:
   its ``x-ratelimit-*`` headers say how much may be sent at once (see below);
3. **a pause** — a 429 stops every admission until the server's ``retry-after`` has passed;
4. **a concurrency slot**, 5. **the request bucket**, 6. **the token bucket** (leaky buckets
   of one minute, :class:`Bucket`: ``rpm``/``tpm`` may pass in a burst, then ``rpm/60`` per
   second, which is how OpenAI's buckets behave). A token reservation (prompt estimate + max
   output) is reconciled with the real usage when the admission is released. No report, of
   usage or in headers, fills a bucket past full: a server claiming 10^12 tokens makes the next
   request wait one period at most.

Learning (``learn=True``). Headers give the server's limit and what remains *now*. A limit that
was not declared becomes a bucket of that size; the remaining amount sets the bucket's level
(never lowering it, and crediting what the server refilled during half the round trip). So with
nothing declared, a 300-RPM server whose bucket is full sees one probe, then 299 requests at
once, then 5 per second: the probe costs one round trip, and nobody floods the server. With no
headers at all (local servers), there is no limit but ``max_concurrency``. Azure's ``-1``/``0``
are read as "no information".

A limiter belongs to the event loop it was created in: create it inside the run. The clock is
``loop.time()`` throughout, so tests drive time by patching it; a pause is waited out through
:data:`SLEEP`, which tests replace with a virtual clock's sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

from ..errors import BadRequest

__all__ = ["Admission", "Bucket", "EndpointLimiter"]

#: How a wait is awaited (``asyncio.sleep``; tests inject a recorder or a virtual clock).
Sleep = Callable[[float], Awaitable[None]]
#: How the engine waits for time to pass: an endpoint's pause here, retry waits in
#: :class:`~promptgrid.engine.scheduler.Scheduler` (unless given another ``sleep``).
#: Looked up at each wait, so a test can replace it for one run.
SLEEP: Sleep = asyncio.sleep

#: The longest the line waits for the probe's answer before admitting the others anyway.
PROBE_WAIT_S = 1.0
_WINDOW_S = 60.0  # rpm, tpm and OpenAI's x-ratelimit-limit-* are all per minute
_KINDS = ("requests", "tokens")

# ------------------------------------------------------------------ the bucket


class Bucket:
    """A leaky bucket on the event loop's clock: it holds up to ``capacity``, leaks
    ``capacity / period`` per second, starts empty, and admits an amount once it fits.

    Why not aiolimiter's ``AsyncLimiter``, which has the same semantics: its public interface
    cannot give back an unused reservation nor set the level a server reports, and both are how
    this limiter stays in step with the server. Only the head of the limiter's line ever waits
    here, so one event wakes it when a refund makes room early.
    """

    __slots__ = ("_at", "_changed", "_level", "_loop", "capacity", "period")

    def __init__(self, capacity: float, period: float) -> None:
        self.capacity = float(capacity)
        self.period = float(period)
        self._loop = asyncio.get_running_loop()
        self._level = 0.0
        self._at = self._loop.time()
        self._changed = asyncio.Event()

    @property
    def rate(self) -> float:
        """What leaks out per second."""
        return self.capacity / self.period

    def level(self) -> float:
        """How full the bucket is now."""
        now = self._loop.time()
        self._level = max(0.0, self._level - (now - self._at) * self.rate)
        self._at = now
        return self._level

    def set_level(self, level: float) -> None:
        """Make the bucket this full now, between empty and full; a waiter re-checks at once.

        Never past full: whatever a server reports (10^12 tokens of usage, say), the next
        request waits at most one period, never the years that report would take to leak.
        NaN leaves the level as it was."""
        now = self.level()
        self._level = now if math.isnan(level) else min(max(0.0, level), self.capacity)
        self._changed.set()

    def delay(self, amount: float) -> float:
        """Seconds until ``amount`` fits (0 if it does now)."""
        return max(0.0, (self.level() + amount - self.capacity) / self.rate)

    async def acquire(self, amount: float) -> float:
        """Wait until ``amount`` (at most ``capacity``) fits, then add it; returns the amount."""
        amount = min(amount, self.capacity)
        while (wait := self.delay(amount)) > 1e-9:
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)
        self._level = self.level() + amount
        return amount


# ------------------------------------------------------------------ the limiter


class EndpointLimiter:
    """Admission control for one endpoint: rate buckets, a concurrency cap, 429 pauses.

    ``rpm``/``tpm``/``max_concurrency``: declared limits (``None`` = none). ``learn``: read the
    server's ``x-ratelimit-*`` headers to create undeclared buckets and to keep every bucket's
    level in step with the server. Create it inside the running event loop.
    """

    def __init__(
        self,
        *,
        rpm: float | None,
        tpm: float | None,
        max_concurrency: int | None,
        learn: bool = True,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm), ("max_concurrency", max_concurrency)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, not {value!r}")
        self._loop = asyncio.get_running_loop()  # fails outside a loop, by design
        self._declared = {"requests": rpm, "tokens": tpm}
        self._buckets: dict[str, Bucket | None] = {
            kind: Bucket(limit, _WINDOW_S) if limit else None
            for kind, limit in self._declared.items()
        }
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._line = _Line()
        self._tickets = itertools.count()
        self._paused_until = -math.inf
        self._learn = learn
        self._probe_back = asyncio.Event()
        self._probe_out = False
        if not learn or (rpm and tpm):  # nothing to learn before sending: no probe
            self._probe_back.set()

    @property
    def rpm(self) -> float | None:
        """The request limit in force (declared or learned), per minute."""
        bucket = self._buckets["requests"]
        return bucket.capacity if bucket else None

    @property
    def tpm(self) -> float | None:
        """The token limit in force (declared or learned), per minute."""
        bucket = self._buckets["tokens"]
        return bucket.capacity if bucket else None

    def check(self, tokens: int) -> str | None:
        """Why a request needing ``tokens`` can never be admitted, or ``None`` if it can."""
        tpm = self.tpm
        if tpm is not None and tokens > tpm:
            return (
                f"this request needs about {tokens} tokens (prompt estimate + max output), more "
                f"than the endpoint's {tpm:g} tokens per minute: lower max_tokens or shorten it"
            )
        return None

    async def acquire(self, tokens: int, *, ticket: int | None = None) -> Admission:
        """Wait for this endpoint to admit a request reserving ``tokens``; first come, first served.

        A retry passes the ``ticket`` of its first admission to keep its place in the line.
        Raises :class:`BadRequest` if ``tokens`` exceeds the token limit (see :meth:`check`).
        Release the returned admission (or use it as a context manager) when the call is done.
        """
        if problem := self.check(tokens):
            raise BadRequest(problem)
        if ticket is None:
            ticket = next(self._tickets)
        await self._line.acquire(ticket)
        probe, slot = False, False
        charged: list[tuple[str, Bucket, float]] = []
        try:
            probe = await self._await_probe()
            if problem := self.check(tokens):  # the probe may have taught us a smaller limit
                raise BadRequest(problem)
            await self._await_pause()
            if self._slots is not None:
                await self._slots.acquire()
                slot = True
            for kind, amount in (("requests", 1.0), ("tokens", float(tokens))):
                # Read the bucket only now: a response may have resized it while we waited.
                bucket = self._buckets[kind]
                if bucket is not None and amount > 0:
                    amount = await bucket.acquire(amount)  # at most the bucket's capacity
                    charged.append((kind, bucket, amount))
            await self._await_pause()  # a 429 may have come back while we waited
        except BaseException:
            # Cancelled or refused before sending: give everything back.
            for _, bucket, amount in charged:
                bucket.set_level(bucket.level() - amount)
            if slot and self._slots is not None:
                self._slots.release()
            if probe:
                self._probe_out = False  # the next in line becomes the probe
            raise
        finally:
            self._line.release()
        tokens_bucket, reserved = next(
            ((b, a) for k, b, a in charged if k == "tokens"), (None, 0.0)
        )
        return Admission(self, ticket, reserved, tokens_bucket, slot, self._loop.time())

    def pause(self, seconds: float) -> None:
        """Stop all admissions until ``seconds`` from now (extends a pause, never shortens it)."""
        if seconds > 0:
            self._paused_until = max(self._paused_until, self._loop.time() + seconds)

    def observe(self, headers: Mapping[str, str], *, sent_at: float | None = None) -> None:
        """Learn from a response's ``x-ratelimit-*`` headers (no-op unless ``learn``).

        ``sent_at`` (``loop.time()`` when the request was sent) lets the limiter credit what the
        server refilled since it counted; without it the report is taken as of now.
        """
        if not self._learn or not headers:
            return
        lower = {k.lower(): v for k, v in headers.items()}
        age = max(0.0, self._loop.time() - sent_at) if sent_at is not None else 0.0
        for kind in _KINDS:
            limit = _number(lower.get(f"x-ratelimit-limit-{kind}"))
            if limit is None or limit <= 0:  # absent, or Azure's -1/0: nothing to learn
                continue
            bucket = self._buckets[kind]
            if self._declared[kind] is None and (bucket is None or bucket.capacity != limit):
                bucket = self._resize(kind, limit)
            remaining = _number(lower.get(f"x-ratelimit-remaining-{kind}"))
            if bucket is None or remaining is None or not 0 <= remaining <= limit:
                continue
            # The server's fill level in our units, less what leaked since it counted: that was
            # somewhere between sending and now, so credit half the round trip (crediting all
            # of it let the odd 429 through in simulation). Raise ours, never lower it: ours
            # also counts requests in flight that the server has not seen yet.
            rate = bucket.rate
            server_level = (limit - remaining) / limit * bucket.capacity - rate * age / 2
            if server_level > bucket.level():
                bucket.set_level(server_level)

    # -------------------------------------------------------------- internals

    def _resize(self, kind: str, limit: float) -> Bucket:
        """Replace a learned bucket by one of ``limit`` per minute, keeping how full it is."""
        old = self._buckets[kind]
        new = Bucket(limit, _WINDOW_S)
        if old is not None:
            new.set_level(old.level() / old.capacity * limit)
        self._buckets[kind] = new
        return new

    async def _await_probe(self) -> bool:
        """Hold the line until the probe is back; return True if the caller *is* the probe."""
        if self._probe_back.is_set():
            return False
        if not self._probe_out:
            self._probe_out = True
            return True
        # Bounded: a slow model (a 10 s answer) must not hold the whole run for a round trip.
        try:
            await asyncio.wait_for(self._probe_back.wait(), PROBE_WAIT_S)
        except asyncio.TimeoutError:
            self._probe_back.set()  # stop waiting for it: later answers still teach the buckets
        return False

    async def _await_pause(self) -> None:
        while (delay := self._paused_until - self._loop.time()) > 0:
            await SLEEP(delay)  # re-check: the pause may have been extended meanwhile

    def _release(self, admission: Admission, used_tokens: int | None) -> None:
        if admission.holds_slot and self._slots is not None:
            self._slots.release()
        bucket = admission.tokens_bucket
        if used_tokens is not None and bucket is not None and used_tokens != admission.tokens:
            bucket.set_level(bucket.level() + used_tokens - admission.tokens)
        self._probe_back.set()  # any attempt that came back ends the probe


class Admission:
    """Permission to send one request; release it when the attempt is over.

    ``with await limiter.acquire(n) as admission:`` releases it on exit without usage (the
    reservation stands); call :meth:`release` with the real usage first to reconcile it.
    """

    def __init__(
        self,
        limiter: EndpointLimiter,
        ticket: int,
        tokens: float,
        tokens_bucket: Bucket | None,
        holds_slot: bool,
        admitted_at: float,
    ) -> None:
        self.ticket = ticket  #: place in line; pass it to the retry's ``acquire``
        self.tokens = tokens  #: tokens reserved in the token bucket
        self.tokens_bucket = tokens_bucket  #: the bucket they were taken from, if any
        self.holds_slot = holds_slot
        self.admitted_at = admitted_at  #: ``loop.time()`` at admission
        self._limiter: EndpointLimiter | None = limiter

    def release(self, used_tokens: int | None = None) -> None:
        """Free the concurrency slot and reconcile the reservation with ``used_tokens``.

        Unused tokens go back to the bucket; extra ones are charged. ``None`` (usage unknown,
        e.g. a failed attempt) keeps the reservation. Releasing twice does nothing.
        """
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self, used_tokens)

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release(None)


class _Line:
    """A lock granted in ticket order (smallest first), so the line is first come, first served
    and a retry that kept its ticket goes back to its old place rather than to the end."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # tie-breaker: futures are not comparable

    async def acquire(self, ticket: int) -> None:
        if not self._held and not self._waiting:
            self._held = True
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (ticket, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed the line, then cancelled: hand it on
            raise

    def release(self) -> None:
        while self._waiting:
            future = heapq.heappop(self._waiting)[-1]
            if not future.done():  # skip the cancelled
                future.set_result(None)  # the line passes directly; _held stays True
                return
        self._held = False


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
