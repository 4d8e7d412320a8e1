"""What crosses the network boundary: a request in, a completion (or a ProviderError) out."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from ..tokens import max_output_tokens


@dataclass(frozen=True)
class Request:
    """One call, fully rendered.

    ``messages`` are chat messages (``{"role", "content", ...}``: content a string or a list
    of parts). ``params`` holds every parameter but ``model`` as the experiment wrote it
    (temperature, max_tokens, seed, stop, response_format, stream, ...); the provider maps
    them onto ``api`` (``chat`` or ``responses``: see :mod:`promptgrid.apis`).
    """

    endpoint: str
    model: str
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    api: str = "chat"

    def max_output_tokens(self) -> int | None:
        """The output tokens this request may use at most (its output limit × ``n``)."""
        return max_output_tokens(self.params)

    def record(self) -> dict[str, Any]:
        """The request as the store's ``requests`` table records it (the API only when it is
        not ``chat``, as in the request's hash)."""
        record: dict[str, Any] = {
            "endpoint": self.endpoint,
            "model": self.model,
            "messages": self.messages,
            "params": self.params,
        }
        if self.api != "chat":
            record["api"] = self.api
        return record


# Choice and Completion are built on every call: plain slotted dataclasses, because a frozen
# one costs four times as much to build (~5 us for Completion's fields). Treat them as values.
@dataclass(slots=True)
class Choice:
    """One answer of a request that asked for several (``n > 1``)."""

    text: str | None
    finish_reason: str | None
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    refusal: str | None = None
    logprobs: Any = None


@dataclass(slots=True)
class Completion:
    """What a provider answered, normalised across providers and APIs.

    The first (usually the only) choice's fields are the completion's own: ``text``,
    ``finish_reason``, ``tool_calls`` (each ``{"id", "type", "name", "arguments"}``, arguments
    the JSON text the model wrote; built-in tools of the Responses API as the server described
    them), ``refusal`` and ``logprobs`` (as the server sent them). ``more_choices`` holds the
    others when a request asked for ``n > 1``; :attr:`choices` lists them all. Usage, latency
    figures and the reasoning summary belong to the request.

    From the ``openai`` provider (online or batch) every text is valid UTF-8 (a lone surrogate
    is U+FFFD) and every usage field is ``None`` (unknown) or an ``int`` from 0: checked where
    the server's data enters (:mod:`.translate`).
    """

    text: str | None
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    resolved_model: str | None = None
    request_id: str | None = None
    # The x-ratelimit-* response headers, lower-cased, as the server sent them.
    rate_limits: Mapping[str, str] = field(default_factory=dict)
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    refusal: str | None = None
    logprobs: Any = None
    reasoning_summary: str | None = None
    ttft_s: float | None = None  #: streams only: seconds to the first output token
    tokens_per_s: float | None = None  #: streams only: output tokens per second after it
    more_choices: tuple[Choice, ...] = ()

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens (0 where the server did not report usage)."""
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    @property
    def choices(self) -> tuple[Choice, ...]:
        """Every choice, the first included."""
        first = Choice(self.text, self.finish_reason, self.tool_calls, self.refusal, self.logprobs)
        return (first, *self.more_choices)

    @classmethod
    def of_choices(cls, choices: tuple[Choice, ...], **request: Any) -> Completion:
        """A completion from its choices (at least one) and the request's fields."""
        first, *rest = choices
        return cls(
            text=first.text,
            finish_reason=first.finish_reason,
            tool_calls=first.tool_calls,
            refusal=first.refusal,
            logprobs=first.logprobs,
            more_choices=tuple(rest),
            **request,
        )


class Provider(Protocol):
    """The only network boundary: one call in, one completion out.

    ``complete`` raises only ``promptgrid.errors.ProviderError`` subclasses. A provider is
    created inside the event loop that uses it and closed with ``aclose`` at the end of a run.
    """

    async def complete(self, request: Request) -> Completion:
        """Send one request and return its completion."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def sdk_keywords(
    params: Mapping[str, Any], create: Callable[..., Any], reserved: frozenset[str]
) -> dict[str, Any]:
    """``params`` as keywords of the SDK's ``create`` method. Parameters it does not name
    (``top_k`` for vLLM, ...) travel in ``extra_body``, so compatible servers still receive them
    (an explicit ``extra_body`` wins); ``reserved`` names are set by the caller, never by
    ``params``."""
    names = _named(create, reserved)
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in params.items():
        (known if name in names else extra)[name] = value
    if extra:
        known["extra_body"] = {**extra, **known.get("extra_body", {})}
    return known


@cache
def _named(create: Callable[..., Any], reserved: frozenset[str]) -> frozenset[str]:
    return frozenset(inspect.signature(create).parameters) - {"self", *reserved}
