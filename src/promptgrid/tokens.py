"""Token arithmetic without a tokenizer, in one place: the limiter's reservations, the echo
provider's usage, the fault server's usage and the plan's estimates all use these.

The estimate is OpenAI's rule of thumb for English — one token per 4 characters, rounded up — plus
4 per message (role and separators) and 3 priming the reply, as in OpenAI's cookbook count; an
image counts ``IMAGE_TOKENS`` (85 with ``detail: low``), and a tool call in the history its name
and arguments. It only sizes reservations and estimates; real usage from the server always wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_OUTPUT_TOKENS", "IMAGE_TOKENS", "estimate_prompt_tokens", "estimate_text_tokens",
    "max_output_tokens", "message_text", "output_limit",
]  # fmt: skip

#: Output tokens reserved when a request sets no output limit (reconciled with real usage).
DEFAULT_OUTPUT_TOKENS = 512
#: Tokens an image part is estimated at: a 1024 × 1024 image at high detail (85 at low detail).
IMAGE_TOKENS = 765
_LOW_DETAIL_TOKENS = 85
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
        content = message.get("content")
        total += _PER_MESSAGE + estimate_text_tokens(message_text(content))
        if isinstance(content, list):
            total += sum(_image_tokens(p) for p in content if isinstance(p, Mapping))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                text = f"{function.get('name', '')}{function.get('arguments', '')}"
                total += estimate_text_tokens(text)
    return total


def _image_tokens(part: Mapping[str, Any]) -> int:
    if part.get("type") not in ("image_url", "input_image"):
        return 0
    image = part.get("image_url")
    detail = image.get("detail") if isinstance(image, Mapping) else part.get("detail")
    return _LOW_DETAIL_TOKENS if detail == "low" else IMAGE_TOKENS


def output_limit(params: Mapping[str, Any]) -> int | None:
    """The output tokens one choice may use (``max_completion_tokens``, else
    ``max_output_tokens``, else ``max_tokens``)."""
    limit = params.get("max_completion_tokens")
    if limit is None:
        limit = params.get("max_output_tokens", params.get("max_tokens"))
    return None if limit is None else int(limit)


def max_output_tokens(params: Mapping[str, Any]) -> int | None:
    """The output tokens a request may use at most (its output limit × ``n``), if bounded."""
    limit = output_limit(params)
    return None if limit is None else limit * int(params.get("n") or 1)
