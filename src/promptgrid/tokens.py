"""Token arithmetic without a tokenizer, in one place: the limiter's reservations, the echo
provider's usage, the fault server's usage and the plan's estimates all use these.

The estimate is OpenAI's rule of thumb for English — one token per 4 characters, rounded up — plus
4 per message (role and separators) and 3 priming the reply, as in OpenAI's cookbook count. It
only sizes reservations and estimates; real usage from the server always wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_OUTPUT_TOKENS", "estimate_prompt_tokens", "estimate_text_tokens", "max_output_tokens",
    "message_text", "output_limit",
]  # fmt: skip

#: Output tokens reserved when a request sets no output limit (reconciled with real usage).
DEFAULT_OUTPUT_TOKENS = 512
_PER_MESSAGE = 4
_REPLY_PRIMING = 3


def estimate_text_tokens(text: str) -> int:
    """Tokens in a piece of text: one per 4 characters, rounded up."""
    return math.ceil(len(text) / 4)


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text of its content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def estimate_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Tokens a list of chat messages costs as a prompt (see the module docstring)."""
    total = _REPLY_PRIMING
    for message in messages:
        total += _PER_MESSAGE + estimate_text_tokens(message_text(message.get("content")))
    return total


def output_limit(params: Mapping[str, Any]) -> int | None:
    """The output tokens one choice may use (``max_completion_tokens``, else ``max_tokens``)."""
    limit = params.get("max_completion_tokens", params.get("max_tokens"))
    return None if limit is None else int(limit)


def max_output_tokens(params: Mapping[str, Any]) -> int | None:
    """The output tokens a request may use at most (its output limit × ``n``), if bounded."""
    limit = output_limit(params)
    return None if limit is None else limit * int(params.get("n") or 1)
