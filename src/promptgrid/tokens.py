"""Token arithmetic without a tokenizer, in one place: the limiter's reservations, the echo
provider's usage, the fault server's usage and the plan's estimates all use these.

The estimate is OpenAI's rule of thumb for English — one token per 4 characters, rounded up — plus
4 per message (role and separators) and 3 priming the reply, as in OpenAI's cookbook count; an
image counts ``IMAGE_TOKENS`` (85 with ``detail: low``), and a tool call in the history its name
and arguments. It only sizes reservations and estimates; real usage from the server always wins.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_OUTPUT_TOKENS", "IMAGE_TOKENS", "IMAGE_WORST_TOKENS", "count_prompt",
    "estimate_prompt_tokens", "estimate_text_tokens", "max_output_tokens", "message_text",
    "output_limit", "prompt_counter", "worst_params_tokens", "worst_prompt_tokens",
]  # fmt: skip

#: Output tokens reserved when a request sets no output limit (reconciled with real usage).
DEFAULT_OUTPUT_TOKENS = 512
#: Tokens an image part is estimated at: a 1024 × 1024 image at high detail (85 at low detail).
IMAGE_TOKENS = 765
_LOW_DETAIL_TOKENS = 85
#: An image's worst case (the budget's bound): OpenAI bills gpt-4o-mini's high-detail images at
#: 2,833 + 5,667 tokens per 512-pixel tile, and a large image has up to 8 tiles.
IMAGE_WORST_TOKENS = 48_169
_LOW_DETAIL_WORST = 2_833
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
    return count_prompt(messages, estimate_text_tokens)


def count_prompt(messages: Iterable[Mapping[str, Any]], text_tokens: Callable[[str], int]) -> int:
    """A prompt's tokens with ``text_tokens`` counting each piece of text: the messages'
    overhead, their text, their images and the tool calls in their history."""
    total = _REPLY_PRIMING
    for message in messages:
        content = message.get("content")
        total += _PER_MESSAGE + text_tokens(message_text(content))
        if isinstance(content, list):
            total += sum(_image_tokens(p) for p in content if isinstance(p, Mapping))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                total += text_tokens(f"{function.get('name', '')}{function.get('arguments', '')}")
    return total


def _image_tokens(part: Mapping[str, Any], worst: bool = False) -> int:
    if part.get("type") not in ("image_url", "input_image"):
        return 0
    image = part.get("image_url")
    detail = image.get("detail") if isinstance(image, Mapping) else part.get("detail")
    if worst:
        return _LOW_DETAIL_WORST if detail == "low" else IMAGE_WORST_TOKENS
    return _LOW_DETAIL_TOKENS if detail == "low" else IMAGE_TOKENS


def worst_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """An upper bound of a prompt's tokens: a byte-level tokenizer never makes more tokens than
    bytes; an image at most ``IMAGE_WORST_TOKENS``; plus OpenAI's per-message overhead. The
    budget relies on this never being low."""
    total = _REPLY_PRIMING
    for message in messages:
        content = message.get("content")
        total += _PER_MESSAGE + len(message_text(content).encode("utf-8"))
        if isinstance(content, list):
            total += sum(_image_tokens(p, worst=True) for p in content if isinstance(p, Mapping))
        for call in message.get("tool_calls") or ():
            total += len(str(call).encode("utf-8"))
    return total


def worst_params_tokens(params: Mapping[str, Any]) -> int:
    """An upper bound of the prompt tokens a request's parameters add (tool definitions and
    output schemas are billed as prompt): one per byte of their JSON."""
    text = json.dumps(params, default=str, ensure_ascii=False)
    return len(text.encode("utf-8", "replace"))


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


#: Where tiktoken's ``o200k_base`` (GPT-4o, GPT-4.1, GPT-5, o-series) would be, once downloaded.
_O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
Counter = Callable[[Iterable[Mapping[str, Any]]], int]


def prompt_counter() -> tuple[str, Counter]:
    """The best offline way to count a prompt's tokens here, and its name: tiktoken's
    ``o200k_base`` when tiktoken is installed (``pip install promptgrid[tokenizer]``) and its data
    is already on disk — never a download — else :func:`estimate_prompt_tokens`."""
    encode = _o200k()
    if encode is None:
        return "estimate: 4 characters a token", estimate_prompt_tokens

    def count(messages: Iterable[Mapping[str, Any]]) -> int:
        return count_prompt(messages, lambda text: len(encode(text)))

    return "counted with tiktoken o200k_base", count


@cache
def _o200k() -> Callable[[str], list[int]] | None:
    try:
        import tiktoken
    except ImportError:
        return None
    folder = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cached = Path(folder or Path(tempfile.gettempdir()) / "data-gym-cache")
    if not (cached / hashlib.sha1(_O200K_URL.encode()).hexdigest()).is_file():
        return None  # tiktoken would fetch it from the network: the estimate will do
    try:
        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # a damaged cache file, or anything else: the estimate will do
        return None
    return lambda text: encoding.encode(text, disallowed_special=())
