"""Per-key rate-limit buckets that behave like OpenAI's, and the headers that describe them.

OpenAI's limits are per minute but enforced continuously: a bucket starts full (a minute's burst
passes at once) and refills at ``limit / 60`` per second. A request is charged one request and
``prompt + max_tokens * n`` tokens *up front*; one that either bucket cannot cover is refused with
the wait it would need and charged nothing, so a client that honours ``retry-after`` gets through
on its next try. The reset headers use Go's duration format because that is what OpenAI sends and
what clients have to parse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Refusal", "go_duration"]


def go_duration(seconds: float) -> str:
    """Format ``seconds`` like Go's ``time.Duration`` (OpenAI's reset headers): ``"12ms"``,
    ``"1s"``, ``"6m0s"``, ``"1m30.5s"``; millisecond precision, rounded up."""
    ms = math.ceil(round(seconds * 1000, 6))  # round first: 0.012 * 1000 is 12.000000000000002
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + secs + "s"


class _Bucket:
    """A token bucket that starts full and refills continuously at ``limit / 60`` per second."""

    __slots__ = ("level", "limit", "stamp")

    def __init__(self, limit: int, now: float) -> None:
        self.limit, self.level, self.stamp = limit, float(limit), now

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.stamp) * self.limit / 60.0)
        self.stamp = now

    def wait(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount``: 0 if it does, inf if it never can."""
        if amount > self.limit:
            return math.inf
        return max(0.0, (amount - self.level) * 60.0 / self.limit)

    def headers(self, kind: str, h: dict[str, str]) -> None:
        # "reset" is the time to a *full* bucket, as OpenAI means it, not to the next free slot.
        h[f"x-ratelimit-limit-{kind}"] = str(self.limit)
        h[f"x-ratelimit-remaining-{kind}"] = str(int(self.level))
        h[f"x-ratelimit-reset-{kind}"] = go_duration((self.limit - self.level) * 60.0 / self.limit)


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: the bucket ``kind`` (OpenAI's error ``type``: ``"requests"`` or
    ``"tokens"``), OpenAI's message, and the ``wait`` in seconds (``inf``: it never fits)."""

    kind: str
    message: str
    wait: float


class _KeyBuckets:
    """One API key's request and token buckets (either may be absent: that limit is off)."""

    __slots__ = ("requests", "tokens")

    def __init__(self, rpm: int | None, tpm: int | None, now: float) -> None:
        self.requests = _Bucket(rpm, now) if rpm else None
        self.tokens = _Bucket(tpm, now) if tpm else None

    def refill(self, now: float) -> None:
        """Bring both buckets up to ``now`` (before deciding anything, so headers are fresh)."""
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.refill(now)

    def admit(self, cost: int, model: str) -> Refusal | None:
        """Charge one request and ``cost`` tokens, or refuse and charge nothing."""
        for kind, bucket, amount in (("requests", self.requests, 1), ("tokens", self.tokens, cost)):
            if bucket is not None and (wait := bucket.wait(amount)) > 0:
                return Refusal(kind, _message(kind, bucket, amount, wait, model), wait)
        for bucket, amount in ((self.requests, 1), (self.tokens, cost)):
            if bucket is not None:
                bucket.level -= amount
        return None

    def headers(self, h: dict[str, str]) -> None:
        """Add the ``x-ratelimit-*`` headers of the limits that are on."""
        if self.requests is not None:
            self.requests.headers("requests", h)
        if self.tokens is not None:
            self.tokens.headers("tokens", h)


def _message(kind: str, bucket: _Bucket, amount: int, wait: float, model: str) -> str:
    short, unit = ("RPM", "requests") if kind == "requests" else ("TPM", "tokens")
    where = f"{model} in organization org-promptgrid on {unit} per min ({short})"
    if wait == math.inf:
        return (
            f"Request too large for {where}: Limit {bucket.limit}, Requested {amount}. "
            "The input or output tokens must be reduced in order to run."
        )
    return (
        f"Rate limit reached for {where}: Limit {bucket.limit}, "
        f"Used {bucket.limit - int(bucket.level)}, Requested {amount}. "
        f"Please try again in {go_duration(wait)}."
    )
