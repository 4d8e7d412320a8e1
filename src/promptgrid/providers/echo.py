"""The offline provider: a deterministic answer, plausible token counts, no network.

It plays for promptgrid users the role httpx's MockTransport plays for httpx users: the whole
pipeline — grid, scheduler, store, files — runs without a key or a connection.
"""

from __future__ import annotations

from ..tokens import estimate_prompt_tokens, estimate_text_tokens, message_text, output_limit
from .base import Completion, Request


class EchoProvider:
    """Answers ``echo: <last user message>``, cut to the output limit (4 characters a token);
    usage is :mod:`promptgrid.tokens`' estimate."""

    async def complete(self, request: Request) -> Completion:
        """Answer at once, deterministically."""
        last_user = next(
            (message_text(m["content"]) for m in reversed(request.messages) if m["role"] == "user"),
            "",
        )
        text = f"echo: {last_user}"
        finish = "stop"
        limit = output_limit(request.params)
        if limit is not None and len(text) > 4 * limit:
            text, finish = text[: 4 * limit], "length"
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=estimate_prompt_tokens(request.messages),
            completion_tokens=estimate_text_tokens(text),
            resolved_model=request.model,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
