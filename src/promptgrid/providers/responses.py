"""The Responses API: a request's arguments (chat messages as input items, parameters mapped by
:mod:`promptgrid.apis`), and its answer — whole or streamed — as a Completion.

Input: a message becomes an input message (text parts ``input_text``, images ``input_image``);
an assistant's tool calls become ``function_call`` items and a ``tool`` message a
``function_call_output``.

Output: the text of every ``output_text`` part (with its logprobs, when asked for), refusals,
``function_call`` items as tool calls (``{"id": call_id, "type": "function", "name",
"arguments"}``; built-in tool calls such as ``web_search_call`` as the server described them)
and the reasoning items' summaries. ``finish_reason`` speaks Chat Completions' words, so one
column compares both APIs: ``stop`` (``tool_calls`` when the model called a function) for a
completed response; an incomplete one says why, ``max_output_tokens`` becoming ``length``.
A failed response is a ``ServerError``; one still in progress a ``MalformedResponse``.

A streamed answer is the ``response.completed`` (or ``response.incomplete``) event's response;
a stream that ends without one was cut short (``MalformedResponse``, retried).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openai.resources.responses import AsyncResponses

from ..apis import responses_arguments
from ..errors import MalformedResponse, ServerError
from ..tokens import message_text
from .base import Completion, Request, sdk_keywords
from .translate import detail, dump, rate_limits, tokens, truncated

__all__ = ["ResponsesStream", "arguments", "completion", "input_items"]

_INCOMPLETE = {"max_output_tokens": "length"}  # Responses' reasons in Chat Completions' words
#: Stream events that carry output (the first one is the first token).
_OUTPUT_EVENTS = frozenset({
    "response.output_text.delta", "response.refusal.delta",
    "response.function_call_arguments.delta", "response.custom_tool_call_input.delta",
})  # fmt: skip
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})


def arguments(request: Request) -> dict[str, Any]:
    """``responses.create()`` keywords for ``request`` (unknown parameters in ``extra_body``)."""
    known = sdk_keywords(responses_arguments(request.params), AsyncResponses.create, _RESERVED)
    known["model"] = request.model
    known["input"] = input_items(request.messages)
    return known


#: ``responses.create()`` keywords set here, never by a request's params.
_RESERVED = frozenset({"model", "input", "timeout", "extra_headers", "extra_query"})


def input_items(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as Responses input items (see the module docstring)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        content = message.get("content")
        if role == "tool":
            output = message_text(content)
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": output,
                }
            )
            continue
        if role == "assistant":
            if content:
                items.append({"role": "assistant", "content": message_text(content)})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                items.append(
                    {"type": "function_call", "call_id": call.get("id"),
                     "name": function.get("name"), "arguments": function.get("arguments", "{}")}
                )  # fmt: skip
            continue
        if isinstance(content, list):
            content = [_input_part(p) for p in content]
        items.append({"role": role, "content": content})
    return items


def _input_part(part: Mapping[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        image = part.get("image_url") or {}
        return {"type": "input_image", "image_url": image.get("url"),
                "detail": image.get("detail") or "auto"}  # fmt: skip
    return {"type": "input_text", "text": part.get("text", "")}


def completion(parsed: Any, headers: Mapping[str, str]) -> Completion:
    """Normalise a parsed Response (see the module docstring)."""
    request_id = getattr(parsed, "_request_id", None) or headers.get("x-request-id")
    status = getattr(parsed, "status", None)
    if status == "failed":
        error = getattr(parsed, "error", None)
        raise ServerError(
            f"the response failed: {getattr(error, 'message', None) or error}",
            request_id=request_id,
        )
    if status not in ("completed", "incomplete"):
        raise truncated(f"the response is {status or 'without a status'}", request_id)
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[Mapping[str, Any]] = []
    logprobs: list[Any] = []
    summaries: list[str] = []
    for item in parsed.output:
        kind = item.type
        if kind == "message":
            for part in item.content:
                if part.type == "output_text":
                    texts.append(part.text)
                    logprobs += dump(list(getattr(part, "logprobs", None) or []))
                elif part.type == "refusal":
                    refusals.append(part.refusal)
        elif kind == "reasoning":
            summaries += [s.text for s in getattr(item, "summary", None) or []]
        elif kind == "function_call":
            calls.append({"id": item.call_id, "type": "function", "name": item.name,
                          "arguments": item.arguments})  # fmt: skip
        elif kind == "custom_tool_call":
            calls.append({"id": item.call_id, "type": "custom", "name": item.name,
                          "input": item.input})  # fmt: skip
        else:
            calls.append(dump(item))
    if status == "completed":
        finish = "tool_calls" if any(c.get("type") == "function" for c in calls) else "stop"
    else:
        reason = getattr(getattr(parsed, "incomplete_details", None), "reason", None)
        finish = _INCOMPLETE.get(str(reason), str(reason or "incomplete"))
    usage = parsed.usage
    return Completion(
        text="".join(texts) if texts else None,
        finish_reason=finish,
        prompt_tokens=tokens(usage, "input_tokens"),
        completion_tokens=tokens(usage, "output_tokens"),
        cached_tokens=detail(usage, "input_tokens_details", "cached_tokens"),
        reasoning_tokens=detail(usage, "output_tokens_details", "reasoning_tokens"),
        resolved_model=parsed.model,
        request_id=request_id,
        rate_limits=rate_limits(headers),
        tool_calls=tuple(calls),
        refusal="".join(refusals) if refusals else None,
        logprobs=logprobs or None,
        reasoning_summary="\n\n".join(summaries) if summaries else None,
    )


class ResponsesStream:
    """Follows a Responses stream to its final event."""

    def __init__(self) -> None:
        self._final: Any = None
        self._id: str | None = None

    def add(self, event: Any) -> bool:
        """Take one event; True if it carried output."""
        kind = getattr(event, "type", None)
        if kind in _OUTPUT_EVENTS:
            return True
        if kind in _FINAL_EVENTS:
            self._final = event.response
        elif kind == "response.created":
            self._id = getattr(event.response, "id", None)
        elif kind == "response.failed":
            self._final = event.response  # completion() raises its error
        elif kind == "error":
            message = getattr(event, "message", None) or "an error event in the stream"
            raise ServerError(f"the stream failed: {message}", request_id=self._id)
        return False

    def result(self, headers: Mapping[str, str]) -> Completion:
        """The whole answer; a stream without its final event was cut short."""
        if self._final is None:
            raise MalformedResponse(
                "truncated: the stream ended before response.completed",
                request_id=headers.get("x-request-id") or self._id,
            )
        return completion(self._final, headers)
