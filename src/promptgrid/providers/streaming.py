"""Streamed answers, in one place: read a stream to its end, timing it, and rebuild the answer.

Each API supplies an accumulator (``ChatStream``, ``ResponsesStream``) that takes events and
says which ones carried output. Two figures come from the timing:

- ``ttft_s``: seconds from the start of the call to the first event carrying output (text, a
  refusal, or a tool call's name or arguments; not a reasoning summary);
- ``tokens_per_s``: output tokens (completion tokens less reasoning tokens: what streamed
  after the first token) per second from that first token to the end of the stream; ``None``
  when the usage is unknown or everything came at once.

A stream cut short (the connection dropped, or the stream ended before its final event) raises
the same errors as a whole answer would, and is retried the same way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from .base import Completion

__all__ = ["Accumulator", "consume"]


class Accumulator(Protocol):
    """Rebuilds one API's answer from its stream."""

    def add(self, event: Any) -> bool:
        """Take one event; True if it carried output."""
        ...

    def result(self, headers: Mapping[str, str]) -> Completion:
        """The whole answer (raises a ``MalformedResponse`` if the stream was cut short)."""
        ...


async def consume(
    stream: AsyncIterable[Any],
    accumulator: Accumulator,
    headers: Mapping[str, str],
    started: float,
    clock: Callable[[], float] = time.monotonic,
) -> Completion:
    """Read ``stream`` to its end; the answer with ``ttft_s`` and ``tokens_per_s`` measured
    from ``started`` (a ``clock()`` reading taken when the call began)."""
    first: float | None = None
    async for event in stream:
        if accumulator.add(event) and first is None:
            first = clock()
    end = clock()
    completion = accumulator.result(headers)
    if first is None:
        return replace(completion, ttft_s=None, tokens_per_s=None)
    return replace(completion, ttft_s=first - started, tokens_per_s=_rate(completion, end - first))


def _rate(completion: Completion, seconds: float) -> float | None:
    if completion.completion_tokens is None or seconds <= 0:
        return None
    tokens = completion.completion_tokens - (completion.reasoning_tokens or 0)
    return tokens / seconds if tokens > 0 else None
