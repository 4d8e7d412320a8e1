"""Deterministic made-up answers, shared by the offline ``echo`` provider and the fault server.

Both answer every kind of request the same predictable way, so a test (or an offline example)
can say in advance what each column will hold:

- the text of choice ``i`` of ``n``: ``echo: <last user message>``, then ``echo [1]: ...``,
  ``echo [2]: ...`` (:func:`echo_text`);
- a structured output: an instance of the requested JSON schema — every property present,
  strings set to the echo text, numbers 0, booleans false, arrays empty (:func:`schema_instance`);
  ``json_object`` gives ``{"echo": <the echo text>}``;
- a tool call: the named (or first) function tool, with arguments an instance of its
  parameters schema (:func:`tool_call`);
- logprobs: one entry per word, with a logprob and ``top_logprobs`` alternatives derived from
  its length (:func:`logprobs`);
- reasoning: ``REASONING_TOKENS`` per effort, and a one-line summary when one is asked for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .tokens import estimate_text_tokens

__all__ = [
    "REASONING_TOKENS", "completion_tokens", "echo_text", "logprobs", "reasoning_summary",
    "reasoning_tokens", "schema_instance", "structured_text", "tool_call",
]  # fmt: skip

#: Reasoning tokens a request "spends" per ``reasoning_effort`` (``medium`` when unnamed).
REASONING_TOKENS: Mapping[str, int] = {
    "none": 0, "minimal": 0, "low": 8, "medium": 16, "high": 32, "xhigh": 64,
}  # fmt: skip
_MAX_DEPTH = 8
_WORDS = re.compile(r"\s*\S+|\s+")


def echo_text(last: str, choice: int = 0) -> str:
    """The answer text of choice ``choice`` (0-based) to a request whose last user message is
    ``last``."""
    return f"echo: {last}" if choice == 0 else f"echo [{choice}]: {last}"


def schema_instance(schema: Any, text: str, root: Any = None, depth: int = 0) -> Any:
    """A value that fits JSON schema ``schema``, with every string set to ``text``."""
    root = schema if root is None else root
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        return schema_instance(target, text, root, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_instance(schema[key][0], text, root, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {k: schema_instance(v, text, root, depth + 1) for k, v in properties.items()}
    if kind == "array":
        count = int(schema.get("minItems") or 0)
        return [schema_instance(schema.get("items"), text, root, depth + 1)] * count
    return {"integer": 0, "number": 0, "boolean": False, "null": None}.get(kind, text)


def structured_text(kind: str, schema: Any, last: str, choice: int = 0) -> str:
    """The JSON answer (choice ``choice``) to a structured-output request (``kind``:
    ``json_schema`` or ``json_object``)."""
    text = echo_text(last, choice)
    value = schema_instance(schema, text) if kind == "json_schema" else {"echo": text}
    return json.dumps(value, ensure_ascii=False)


def tool_call(tools: Sequence[Any], tool_choice: Any, last: str) -> tuple[str, str] | None:
    """``(name, JSON arguments)`` of the function a request would call: the one ``tool_choice``
    names, else the first function tool. ``None`` when it offers no function."""
    found = (_function(t) for t in tools if isinstance(t, Mapping))
    functions = [f for f in found if f is not None]
    if not functions:
        return None
    chosen = functions[0]
    wanted = _function(tool_choice) if isinstance(tool_choice, Mapping) else None
    if wanted is not None:
        chosen = next((f for f in functions if f.get("name") == wanted.get("name")), chosen)
    arguments = schema_instance(chosen.get("parameters") or {"type": "object"}, echo_text(last))
    return str(chosen.get("name", "")), json.dumps(arguments, ensure_ascii=False)


def logprobs(text: str, top: int = 0) -> list[dict[str, Any]]:
    """One logprob entry per word of ``text`` (its leading space kept), OpenAI's shape:
    ``{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}, ...]}``."""
    out = []
    for token in _WORDS.findall(text):
        logprob = -round(0.05 * (len(token) % 7), 4)
        alternatives = [(token, logprob)] + [
            (f"{token}{'~' * i}", round(logprob - i, 4)) for i in range(1, top)
        ]
        out.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": p, "bytes": list(t.encode())}
                    for t, p in alternatives[:top]
                ],
            }
        )
    return out


def reasoning_tokens(params: Mapping[str, Any]) -> int:
    """Reasoning tokens for a request: by ``reasoning_effort`` or ``reasoning.effort``; 0 when
    it asks for no reasoning."""
    reasoning = params.get("reasoning")
    effort = params.get("reasoning_effort")
    if effort is None and isinstance(reasoning, Mapping):
        effort = reasoning.get("effort", "medium")
    if effort is None:
        return 0
    return REASONING_TOKENS.get(str(effort), REASONING_TOKENS["medium"])


def reasoning_summary(params: Mapping[str, Any], last: str) -> str | None:
    """The reasoning summary, when the request asks for one (``reasoning.summary``)."""
    reasoning = params.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("summary"):
        return f"Thinking about: {last}"
    return None


def completion_tokens(texts: Sequence[str], reasoning: int = 0) -> int:
    """Output tokens of a request's answers (each choice's text) plus its reasoning tokens."""
    return sum(estimate_text_tokens(t) for t in texts) + reasoning


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A function tool (or tool choice) in either shape, as ``{name, parameters, ...}``."""
    if tool.get("type") != "function":
        return None
    inner = tool.get("function")
    return inner if isinstance(inner, Mapping) else tool
