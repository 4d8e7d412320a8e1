"""The offline provider: a deterministic answer, plausible token counts, no network.

It plays for promptgrid users the role httpx's MockTransport plays for httpx users: the whole
pipeline — grid, scheduler, store, files — runs without a key or a connection.
"""

from __future__ import annotations

from .base import Completion, Request


class EchoProvider:
    """Answers ``echo: <last user message>``, cut to ``max_tokens`` (about 4 characters each)."""

    async def complete(self, request: Request) -> Completion:
        """Answer at once, deterministically."""
        last_user = next(
            (m["content"] for m in reversed(request.messages) if m["role"] == "user"), ""
        )
        text = f"echo: {last_user}"
        finish = "stop"
        limit = request.params.get("max_completion_tokens", request.params.get("max_tokens"))
        if limit is not None and len(text) > 4 * int(limit):
            text, finish = text[: 4 * int(limit)], "length"
        prompt_chars = sum(len(m["content"]) for m in request.messages)
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_chars // 4 + 3 * len(request.messages) + 1,
            completion_tokens=len(text) // 4 + 1,
            resolved_model=request.model,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
