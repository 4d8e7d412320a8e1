"""Token arithmetic without a tokenizer, in one place: the limiter's reservations, the echo
provider's usage, the fault server's usage and the plan's estimates all use these.

The estimate is OpenAI's rule of thumb for English — one token per 4 characters, rounded up — plus
4 per message (role and separators) and 3 priming the reply, as in OpenAI's cookbook count. It
only sizes reservations and estimates; real usage from the server always wins.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_OUTPUT_TOKENS", "estimate_prompt_tokens", "estimate_text_tokens", "max_output_tokens",
    "message_text", "output_limit", "prompt_counter",
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
        total = _REPLY_PRIMING
        for message in messages:
            total += 3 + len(encode(message_text(message.get("content"))))
        return total

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
