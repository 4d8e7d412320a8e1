"""A completion as the store keeps it: each choice's tool calls and logprobs as JSON text, and a
structured output parsed.

When the request asked for a JSON answer (``response_format`` or ``text.format`` of type
``json_schema`` or ``json_object``), each choice's text is parsed: ``parsed`` holds the JSON,
or ``parse_error`` says why the text is not JSON. Other answers are not parsed.

The provider edge checked what a server sent (:mod:`promptgrid.providers.translate`). Should an
answer still fail to become a row — here, or when the store writes it — for a reason no check
foresaw, :func:`unstorable` makes it that row's error (``malformed_response``), as an answer
that could not be read is: one answer never ends a run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .. import untrusted
from ..apis import parse_structured, structured_format
from ..errors import MalformedResponse
from ..providers.base import Choice, Completion, Request
from ..store import Answer, ResultRow, StoredChoice, dumps

__all__ = ["stored_answer", "unstorable"]


def unstorable(row: ResultRow, exc: BaseException) -> ResultRow:
    """The error row standing for ``row``, whose answer could not be stored (``exc`` says
    why): ``malformed_response``, its last attempt an error too, no answer (its cost, if
    known, stays: the call was paid for)."""
    error = MalformedResponse(
        f"the answer could not be stored: {type(exc).__name__}: {untrusted.text(str(exc))}"
    )
    attempts = list(row.attempts)
    if attempts:
        attempts[-1] = {**attempts[-1], "status": "error", "error_type": error.code,
                        "error": error.message}  # fmt: skip
    return dataclasses.replace(
        row, status="error", answer=None, response_id=None, cached=False,
        error_type=error.code, http_status=None, error=error.message, attempts=attempts,
    )  # fmt: skip


def stored_answer(
    request: Request, completion: Completion, latency_s: float | None, cost_usd: float | None
) -> Answer:
    """``completion`` (the answer to ``request``) as the store keeps it."""
    structured = structured_format(request.params) is not None
    plain = not (structured or completion.tool_calls or completion.more_choices)
    if plain and completion.logprobs is None and completion.ttft_s is None:  # most answers
        return Answer(
            completion.text, completion.finish_reason, completion.prompt_tokens,
            completion.completion_tokens, completion.cached_tokens, completion.reasoning_tokens,
            completion.resolved_model, completion.request_id, latency_s, cost_usd,
            dict(completion.rate_limits), refusal=completion.refusal,
            reasoning_summary=completion.reasoning_summary,
        )  # fmt: skip
    first = _stored(completion.text, completion.finish_reason, completion.tool_calls,
                    completion.refusal, completion.logprobs, structured)  # fmt: skip
    choices: tuple[StoredChoice, ...] = ()
    if completion.more_choices:
        choices = (first, *(_stored_choice(c, structured) for c in completion.more_choices))
    return Answer(
        response=completion.text,
        finish_reason=completion.finish_reason,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cached_tokens=completion.cached_tokens,
        reasoning_tokens=completion.reasoning_tokens,
        resolved_model=completion.resolved_model,
        request_id=completion.request_id,
        latency_s=latency_s,
        cost_usd=cost_usd,
        rate_limits=dict(completion.rate_limits),
        tool_calls=first.tool_calls,
        parsed=first.parsed,
        parse_error=first.parse_error,
        refusal=completion.refusal,
        logprobs=first.logprobs,
        reasoning_summary=completion.reasoning_summary,
        ttft_s=completion.ttft_s,
        tokens_per_s=completion.tokens_per_s,
        choices=choices,
    )


def _stored_choice(choice: Choice, structured: bool) -> StoredChoice:
    return _stored(choice.text, choice.finish_reason, choice.tool_calls, choice.refusal,
                   choice.logprobs, structured)  # fmt: skip


def _stored(
    text: str | None,
    finish_reason: str | None,
    tool_calls: tuple[Mapping[str, Any], ...],
    refusal: str | None,
    logprobs: Any,
    structured: bool,
) -> StoredChoice:
    parsed = parse_error = None
    if structured:
        parsed, parse_error = parse_structured(text)
    return StoredChoice(
        response=text,
        finish_reason=finish_reason,
        tool_calls=dumps(list(tool_calls)) if tool_calls else None,
        parsed=parsed,
        parse_error=parse_error,
        refusal=refusal,
        logprobs=dumps(logprobs) if logprobs is not None else None,
    )
