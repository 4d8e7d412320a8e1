"""The answer the fault server makes for a request, whichever API asked and however it is sent.

:func:`make` decides what a request gets — choices, tool calls, a structured output, a refusal,
logprobs, reasoning — from the request itself and the answer kind a script chose; :mod:`.shapes`
then writes it as a chat completion, a Responses API response, or either as a stream. The
made-up values are :mod:`promptgrid.synthetic`'s, so the offline ``echo`` provider gives the
same ones:

- text: choice ``i`` of ``n`` answers ``echo: <last user message>`` (``echo [i]: ...`` for
  ``i > 0``);
- a structured output (``response_format`` / ``text.format`` of type ``json_schema`` or
  ``json_object``): JSON fitting the schema; ``"bad_json"`` cuts it in half;
- a tool call when the request forces one (``tool_choice: required`` or a named function) or a
  script says ``"tool_call"``: the named or first function, its arguments fitting its
  parameters' schema, id ``call_<request number>_<choice>``;
- ``"refusal"``: no text, a refusal;
- ``"surrogates"``: the text ends in `` ok`` and an emoji written as its two UTF-16 halves
  (``"\\ud83d\\ude00"``: whole, JSON joins them; streamed, a chunk ends after the first),
  then a lone surrogate ``"\\ud800"``; every tool call's id ends in ``"\\ud800"`` too;
- ``"bad_usage"``: every usage number is the server's ``bad_usage`` setting
  (:attr:`Made.usage`, filled by :func:`.shapes.every_usage_field`);
- logprobs when asked for (chat ``logprobs: true``; Responses ``include:
  [message.output_text.logprobs]``), ``top_logprobs`` alternatives each;
- reasoning tokens by effort (``reasoning_effort`` or ``reasoning.effort``) and, on the
  Responses API, a summary item when ``reasoning.summary`` is set;
- usage: the prompt by :func:`promptgrid.tokens.estimate_prompt_tokens`, the output as the
  estimate of every choice's text (or refusal, or tool arguments) plus the reasoning tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import synthetic
from ..apis import LOGPROBS_INCLUDE, structured_format, structured_schema
from ..tokens import estimate_text_tokens

__all__ = ["Made", "MadeChoice", "make"]

REFUSAL = "I can't help with that. (promptgrid FaultServer)"
#: What ``"surrogates"`` appends to a text: an emoji as two UTF-16 halves, a lone surrogate.
SURROGATES = " ok\ud83d\ude00 \ud800"


@dataclass
class MadeChoice:
    """One choice: its text (or refusal), tool calls ``(id, name, arguments)``, logprobs."""

    text: str | None
    finish: str | None
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    refusal: str | None = None
    logprobs: list[dict[str, Any]] | None = None

    @property
    def output_tokens(self) -> int:
        """Tokens of what this choice says (text, refusal or tool arguments)."""
        said = (self.text or "") + (self.refusal or "") + "".join(n + a for _, n, a in self.calls)
        return estimate_text_tokens(said)


@dataclass
class Made:
    """A whole answer: its choices, the request's reasoning tokens and summary, its usage."""

    choices: list[MadeChoice]
    prompt_tokens: int
    reasoning_tokens: int = 0
    summary: str | None = None
    #: Usage fields sent instead of the made ones (the ``usage`` setting), whatever they are.
    usage: Mapping[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        """Output tokens of every choice, reasoning included."""
        return sum(c.output_tokens for c in self.choices) + self.reasoning_tokens


def make(
    body: Mapping[str, Any],
    api: str,
    last: str,
    n: int,
    prompt_tokens: int,
    kind: str | None,
    number: int,
    echo: str | None = None,
    scripted: str | None = None,
) -> Made:
    """The answer to request ``body`` (its last user message ``last``, its ``n``) given answer
    ``kind`` (``None``: a normal answer; ``"truncated"`` or an answer kind: ``"tool_call"``,
    ``"bad_json"``, ``"refusal"``, ``"surrogates"``; the server forges ``"bad_usage"``).
    ``number`` numbers the request (tool call ids); ``echo``, the caller's key when the server
    plants it, ends every text; ``scripted`` replaces every choice's text (the server's
    ``answers`` setting)."""
    structured = structured_format(body)
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    forced = choice == "required" or (isinstance(choice, Mapping) and choice.get("type"))
    wants_logprobs = bool(body.get("logprobs")) or LOGPROBS_INCLUDE in (body.get("include") or [])
    top = int(body.get("top_logprobs") or 0)
    choices = []
    for i in range(n):
        made = MadeChoice(None, "stop")
        call = synthetic.tool_call(tools, choice, last) if tools else None
        if call is not None and (forced or kind == "tool_call"):
            made.calls.append((f"call_{number}_{i}", *call))
            made.finish = "tool_calls"
        elif kind == "refusal":
            made.refusal = REFUSAL
        elif scripted is not None:
            made.text = scripted
        elif structured is not None:
            made.text = synthetic.structured_text(structured, structured_schema(body), last, i)
        else:
            made.text = synthetic.echo_text(last, i)
        if kind == "surrogates":
            made.text = None if made.text is None else made.text + SURROGATES
            made.calls = [(id_ + "\ud800", name, args) for id_, name, args in made.calls]
        if kind == "bad_json" and made.text is not None:
            made.text = made.text[: max(1, len(made.text) // 2)]
        if kind == "truncated":
            made.finish = None
            if made.text is not None:
                made.text = made.text[: len(made.text) // 2]
        if echo is not None:  # after any cut: the whole key, never a prefix a scrub would miss
            if made.text is not None:
                made.text += f" key={echo}"
            if made.refusal is not None:
                made.refusal += f" key={echo}"
        if wants_logprobs and made.text is not None:
            made.logprobs = synthetic.logprobs(made.text, top)
        choices.append(made)
    reasoning = synthetic.reasoning_tokens(body)
    summary = synthetic.reasoning_summary(body, last) if api == "responses" else None
    return Made(choices, prompt_tokens, reasoning, summary)
