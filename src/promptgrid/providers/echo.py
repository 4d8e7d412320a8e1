"""The offline provider: a deterministic answer, plausible token counts, no network.

It plays for promptgrid users the role httpx's MockTransport plays for httpx users: the whole
pipeline — grid, scheduler, store, files — runs without a key or a connection, for every kind
of request (the answers are :mod:`promptgrid.synthetic`'s, as the fault server's are):

- ``n`` choices: ``echo: <last user message>``, ``echo [1]: ...``, ...;
- ``response_format`` / ``text.format`` with a JSON schema: an instance of the schema;
- ``tools``: no call (echo answers in text; the fault server can call tools);
- ``logprobs: true``: one entry per word; ``reasoning_effort``: reasoning tokens by effort, and
  a summary when ``reasoning.summary`` asks for one;
- ``stream: true``: the same answer, with ``ttft_s`` 0 (it is instant) and no tokens per second;
- either API (``chat`` or ``responses``): the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import synthetic
from ..apis import structured_format, structured_schema
from ..tokens import estimate_prompt_tokens, estimate_text_tokens, message_text, output_limit
from .base import Choice, Completion, Request

#: Parameters that change what echo answers (anything else gets the plain answer).
_ANSWER_SHAPING = frozenset(
    {"n", "response_format", "text", "logprobs", "reasoning_effort", "reasoning", "stream"}
)


class EchoProvider:
    """Answers ``echo: <last user message>``, cut to the output limit (4 characters a token);
    usage is :mod:`promptgrid.tokens`' estimate (see the module docstring for other kinds)."""

    async def complete(self, request: Request) -> Completion:
        """Answer at once, deterministically."""
        params = request.params
        last = next(
            (message_text(m["content"]) for m in reversed(request.messages) if m["role"] == "user"),
            "",
        )
        limit = output_limit(params)
        if not _ANSWER_SHAPING.intersection(params):  # a plain request: the plain answer
            text = synthetic.echo_text(last)
            finish = "stop"
            if limit is not None and len(text) > 4 * limit:
                text, finish = text[: 4 * limit], "length"
            return Completion(
                text=text,
                finish_reason=finish,
                prompt_tokens=estimate_prompt_tokens(request.messages),
                completion_tokens=estimate_text_tokens(text),
                resolved_model=request.model,
            )
        kind = structured_format(params)
        shape = "list" if request.api == "responses" else "chat"
        choices = tuple(
            _choice(last, i, limit, kind, params, shape) for i in range(int(params.get("n") or 1))
        )
        reasoning = synthetic.reasoning_tokens(params)
        return Completion.of_choices(
            choices,
            prompt_tokens=estimate_prompt_tokens(request.messages),
            completion_tokens=sum(estimate_text_tokens(c.text or "") for c in choices) + reasoning,
            reasoning_tokens=reasoning if reasoning else None,
            resolved_model=request.model,
            reasoning_summary=synthetic.reasoning_summary(params, last),
            ttft_s=0.0 if params.get("stream") else None,
        )

    async def aclose(self) -> None:
        """Nothing to release."""


def _choice(
    last: str,
    index: int,
    limit: int | None,
    kind: str | None,
    params: Mapping[str, Any],
    shape: str,
) -> Choice:
    if kind is not None:
        text = synthetic.structured_text(kind, structured_schema(params), last, index)
    else:
        text = synthetic.echo_text(last, index)
    finish = "stop"
    if limit is not None and len(text) > 4 * limit:
        text, finish = text[: 4 * limit], "length"
    logprobs = None
    if params.get("logprobs"):
        entries = synthetic.logprobs(text, int(params.get("top_logprobs") or 0))
        logprobs = entries if shape == "list" else {"content": entries}
    return Choice(text, finish, logprobs=logprobs)
