"""Chat Completions: a request's arguments, and its answer — whole or streamed — as a Completion.

Every choice is kept (``n > 1``), with its tool calls (``{"id", "type", "name", "arguments"}``),
refusal and logprobs. A streamed answer is rebuilt from its chunks (content, refusals, tool-call
fragments and logprobs, per choice index); ``stream_options.include_usage`` asks for the final
chunk that carries the usage. An answer whose choice has no ``finish_reason`` — a body or a
stream cut short — is a ``MalformedResponse`` (retried).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openai.resources.chat.completions import AsyncCompletions

from ..apis import chat_arguments
from .base import Choice, Completion, Request, sdk_keywords
from .translate import detail, dump, rate_limits, tokens, truncated

__all__ = ["ChatStream", "arguments", "completion"]


def arguments(request: Request) -> dict[str, Any]:
    """``create()`` keywords for ``request`` (unknown parameters in ``extra_body``)."""
    known = sdk_keywords(chat_arguments(request.params), AsyncCompletions.create, _RESERVED)
    if known.get("stream"):
        known["stream_options"] = {"include_usage": True}
    known["model"] = request.model
    known["messages"] = [dict(m) for m in request.messages]  # the SDK's TypedDicts, in effect
    return known


#: ``create()`` keywords set here, never by a request's params.
_RESERVED = frozenset(
    {"model", "messages", "timeout", "extra_headers", "extra_query", "stream_options"}
)


def completion(parsed: Any, headers: Mapping[str, str]) -> Completion:
    """Normalise a parsed ChatCompletion; an incomplete one is a MalformedResponse."""
    request_id = getattr(parsed, "_request_id", None) or headers.get("x-request-id")
    choices = parsed.choices
    if not choices:
        raise truncated("the response has no choices", request_id)
    more: tuple[Choice, ...] = ()
    if len(choices) > 1:
        choices = sorted(choices, key=_index)
        more = tuple(_choice(c, request_id) for c in choices[1:])
    first = choices[0]
    if first.finish_reason is None:
        raise truncated("the response ended without a finish_reason", request_id)
    message = first.message
    usage = parsed.usage
    return Completion(
        text=message.content,
        finish_reason=first.finish_reason,
        prompt_tokens=tokens(usage, "prompt_tokens"),
        completion_tokens=tokens(usage, "completion_tokens"),
        cached_tokens=detail(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=detail(usage, "completion_tokens_details", "reasoning_tokens"),
        resolved_model=parsed.model,
        request_id=request_id,
        rate_limits=rate_limits(headers),
        tool_calls=_tool_calls(message.tool_calls) if message.tool_calls else (),
        refusal=getattr(message, "refusal", None),
        logprobs=dump(first.logprobs) if first.logprobs is not None else None,
        more_choices=more,
    )


def _index(choice: Any) -> int:
    return int(getattr(choice, "index", 0) or 0)


def _choice(choice: Any, request_id: str | None) -> Choice:
    if choice.finish_reason is None:
        raise truncated(f"choice {_index(choice)} ended without a finish_reason", request_id)
    message = choice.message
    return Choice(
        message.content,
        choice.finish_reason,
        _tool_calls(message.tool_calls) if message.tool_calls else (),
        getattr(message, "refusal", None),
        dump(choice.logprobs) if choice.logprobs is not None else None,
    )


def _tool_calls(calls: Any) -> tuple[Mapping[str, Any], ...]:
    out = []
    for call in calls:
        kind = getattr(call, "type", "function")
        if kind == "function":
            function = call.function
            out.append(
                {
                    "id": call.id,
                    "type": kind,
                    "name": function.name,
                    "arguments": function.arguments,
                }
            )
        elif kind == "custom":
            out.append({"id": call.id, "type": kind, "name": call.custom.name,
                        "input": call.custom.input})  # fmt: skip
        else:
            out.append(dump(call))
    return tuple(out)


class ChatStream:
    """Rebuilds a Chat Completion from its stream of chunks."""

    def __init__(self) -> None:
        self._choices: dict[int, _Partial] = {}
        self._usage: Any = None
        self._model: str | None = None
        self._id: str | None = None

    def add(self, chunk: Any) -> bool:
        """Take one chunk; True if it carried output (text, a refusal or a tool call)."""
        self._model = getattr(chunk, "model", None) or self._model
        self._id = self._id or getattr(chunk, "id", None)
        if getattr(chunk, "usage", None) is not None:
            self._usage = chunk.usage
        output = False
        for choice in chunk.choices or ():
            partial = self._choices.setdefault(_index(choice), _Partial())
            output = partial.add(choice) or output
        return output

    def result(self, headers: Mapping[str, str]) -> Completion:
        """The whole answer; a stream that ended before every choice finished is truncated."""
        request_id = headers.get("x-request-id") or self._id
        if not self._choices:
            raise truncated("the stream ended before any choice", request_id)
        choices = []
        for index in sorted(self._choices):
            choice = self._choices[index].choice()
            if choice.finish_reason is None:
                raise truncated(f"the stream of choice {index} ended early", request_id)
            choices.append(choice)
        usage = self._usage
        return Completion.of_choices(
            tuple(choices),
            prompt_tokens=tokens(usage, "prompt_tokens"),
            completion_tokens=tokens(usage, "completion_tokens"),
            cached_tokens=detail(usage, "prompt_tokens_details", "cached_tokens"),
            reasoning_tokens=detail(usage, "completion_tokens_details", "reasoning_tokens"),
            resolved_model=self._model,
            request_id=request_id,
            rate_limits=rate_limits(headers),
        )


class _Partial:
    """One choice of a streamed answer, as far as it has arrived."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[Any] | None = None
        self.finish: str | None = None

    def add(self, choice: Any) -> bool:
        output = False
        delta = choice.delta
        if delta is not None:
            if delta.content:
                self.text.append(delta.content)
                output = True
            if getattr(delta, "refusal", None):
                self.refusal.append(delta.refusal)
                output = True
            for call in delta.tool_calls or ():
                slot = self.calls.setdefault(
                    int(call.index or 0), {"id": None, "type": "function", "name": "", "args": []}
                )
                slot["id"] = call.id or slot["id"]
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["args"].append(call.function.arguments or "")
                output = True
        logprobs = getattr(choice, "logprobs", None)
        if logprobs is not None and logprobs.content:
            self.logprobs = (self.logprobs or []) + dump(list(logprobs.content))
        if choice.finish_reason is not None:
            self.finish = choice.finish_reason
        return output

    def choice(self) -> Choice:
        calls = tuple(
            {"id": c["id"], "type": c["type"], "name": c["name"], "arguments": "".join(c["args"])}
            for _, c in sorted(self.calls.items())
        )
        return Choice(
            "".join(self.text) if self.text else None,
            self.finish,
            calls,
            "".join(self.refusal) if self.refusal else None,
            {"content": self.logprobs} if self.logprobs is not None else None,
        )
