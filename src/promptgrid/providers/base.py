"""What crosses the network boundary: a request in, a completion (or a ProviderError) out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..tokens import max_output_tokens


@dataclass(frozen=True)
class Request:
    """One chat-completion call, fully rendered.

    ``params`` holds every chat-completion parameter except ``model`` (temperature, max_tokens,
    seed, stop, response_format, ...), exactly as they will be sent.
    """

    endpoint: str
    model: str
    messages: tuple[Mapping[str, str], ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    def max_output_tokens(self) -> int | None:
        """The output tokens this request may use at most (its output limit × ``n``)."""
        return max_output_tokens(self.params)


@dataclass(frozen=True)
class Completion:
    """What a provider answered, normalised across providers."""

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

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens (0 where the server did not report usage)."""
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


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
