"""LLM-as-judge: the request a judge sends about one answer, and how its verdict is read.

The request is the rubric rendered with the row — its vars, case columns and params, plus
``answer`` (the graded answer), ``prompt`` (the last user message sent) and ``messages`` (all of
them) — after one system message asking for a JSON object only: ``{"reason": ..., "verdict":
"pass" | "fail"}``, or ``{"reason": ..., "score": 1..N}`` on a scale. The request also asks for
that shape as a structured output (``response_format`` with a JSON schema); the judge's own
``params`` may replace it (``response_format: {type: json_object}`` for servers without JSON
schemas). The request is hashed like any other (``grid.request_key``), so a judge's verdict on
an unchanged answer and rubric is a cache hit, never a second payment.

The verdict is read strictly: a JSON object (a Markdown code fence around it is allowed) whose
``verdict`` is ``pass``/``fail`` (any case) or a boolean, or whose ``score`` is an integer in
``1..N``. Anything else is *unparseable*: the score stays empty and the row says why — a
verdict is never guessed from prose.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .. import untrusted
from ..providers.base import Request
from ..spec.scores import JudgeDef
from ..spec.yamlmarks import shorten
from .checks import ScoreFailure

__all__ = ["instruction", "judge_context", "judge_request", "parse_verdict", "response_format"]

_FENCE = re.compile(r"^```[A-Za-z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def instruction(scale: int | None) -> str:
    """The system message that asks for the verdict's shape."""
    shape = (
        '"verdict": "pass" or "fail"'
        if scale is None
        else f'"score": an integer from 1 (worst) to {scale} (best)'
    )
    return (
        "You are a strict, impartial grader. Follow the grading instructions you are given. "
        'Reply with one JSON object and nothing else: {"reason": "<one or two sentences>", '
        f"{shape}}}."
    )


def response_format(scale: int | None) -> dict[str, Any]:
    """The structured-output request for the verdict's shape."""
    field: dict[str, Any] = (
        {"verdict": {"type": "string", "enum": ["pass", "fail"]}}
        if scale is None
        else {"score": {"type": "integer"}}
    )
    schema = {
        "type": "object",
        "properties": {"reason": {"type": "string"}, **field},
        "required": ["reason", *field],
        "additionalProperties": False,
    }
    return {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "strict": True, "schema": schema},
    }


def judge_context(
    values: Mapping[str, Any], answer: str | None, messages: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What a rubric sees: the row's values, ``answer``, ``prompt`` and ``messages``."""
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    prompt = users[-1] if users and isinstance(users[-1], str) else ""
    return {**values, "answer": answer or "", "prompt": prompt, "messages": list(messages)}


def judge_request(judge: JudgeDef, endpoint_id: str, context: Mapping[str, Any]) -> Request:
    """The judge's request about one answer (raises ``RenderError`` if the rubric fails)."""
    messages = [{"role": "system", "content": instruction(judge.scale)}]
    messages += [{"role": role, "content": t.render(context)} for role, t in judge.messages]
    params = {"response_format": response_format(judge.scale), **judge.params}
    return Request(endpoint_id, judge.model, tuple(messages), params)


def parse_verdict(text: str | None, scale: int | None) -> tuple[float, str | None]:
    """(value, reason) from a judge's answer: 1.0/0.0 for pass/fail, else the score.

    Raises :class:`ScoreFailure` (``unparseable verdict: ...``) for anything else."""
    raw = (text or "").strip()
    fenced = _FENCE.match(raw)
    try:
        data = untrusted.loads(fenced.group(1) if fenced else raw)
    except ValueError:
        data = None
    except RecursionError:
        raise _unparseable(raw, "nested too deeply to read") from None
    if not isinstance(data, dict):
        raise _unparseable(raw, "not a JSON object")
    reason = data.get("reason")
    reason = untrusted.text(reason) if isinstance(reason, str) else None
    if scale is None:
        verdict = data.get("verdict")
        if isinstance(verdict, bool):
            return float(verdict), reason
        if isinstance(verdict, str) and verdict.strip().lower() in ("pass", "fail"):
            return float(verdict.strip().lower() == "pass"), reason
        raise _unparseable(raw, 'no "verdict" of pass or fail')
    score = data.get("score")
    number = not isinstance(score, bool)
    if isinstance(score, int) and number and not 1 <= score <= scale:  # 10**400 is no float
        raise _unparseable(raw, f"score {shorten(str(score), 20)} is outside 1..{scale}")
    if isinstance(score, int | float) and number and math.isfinite(score) and score % 1 == 0:
        if 1 <= score <= scale:
            return float(score), reason
        raise _unparseable(raw, f"score {score:g} is outside 1..{scale}")
    raise _unparseable(raw, f'no integer "score" from 1 to {scale}')


def _unparseable(raw: str, why: str) -> ScoreFailure:
    return ScoreFailure(f"unparseable verdict ({why}): {shorten(repr(raw), 120)}")
