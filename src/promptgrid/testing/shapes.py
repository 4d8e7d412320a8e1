"""A made answer (:mod:`.made`) in the shapes OpenAI sends: a chat completion, a Responses API
response, and each as a Server-Sent Events stream.

Streams are lists of events ``(bytes, carries output)``, each one ``data:`` line (Responses events
also name themselves in an ``event:`` line), written by the server one by one (``"stream_cut"``
closes the connection after the first event that carries output):

- chat: per choice a role chunk, the text word by word (each word's logprobs with it), each tool
  call's name then its arguments, a refusal, a last chunk with the ``finish_reason``; then, with
  ``stream_options.include_usage``, a chunk with no choices and the usage; then ``[DONE]``. A
  choice without a ``finish_reason`` (``"truncated"``) leaves its last chunk out.
- Responses: ``response.created``; per output item ``response.output_item.added``, its deltas
  (reasoning summary text, output text word by word, function call arguments), its ``.done``
  events; then ``response.completed`` (or ``response.incomplete``) with the whole response. A
  truncated answer stops before the final event.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .made import Made, MadeChoice

__all__ = [
    "Event", "chat_completion", "chat_stream", "every_usage_field", "response",
    "response_stream",
]  # fmt: skip

_WORDS = re.compile(r"\s*\S+|\s+")
#: One event of a stream: its bytes, and whether it carries output (text, a refusal, a call).
Event = tuple[bytes, bool]


def every_usage_field(api: str, value: Any) -> dict[str, Any]:
    """Usage in ``api``'s shape with every number replaced by ``value`` (the ``bad_usage``
    answer kind: a server whose counts are not counts)."""
    if api == "responses":
        return {"input_tokens": value, "input_tokens_details": {"cached_tokens": value},
                "output_tokens": value, "output_tokens_details": {"reasoning_tokens": value},
                "total_tokens": value}  # fmt: skip
    return {"prompt_tokens": value, "completion_tokens": value, "total_tokens": value,
            "prompt_tokens_details": {"cached_tokens": value},
            "completion_tokens_details": {"reasoning_tokens": value}}  # fmt: skip


def _usage_chat(made: Made) -> dict[str, Any]:
    completion = made.completion_tokens
    return {
        "prompt_tokens": made.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": made.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": made.reasoning_tokens},
        **made.usage,
    }


def _usage_responses(made: Made) -> dict[str, Any]:
    output = made.completion_tokens
    return {
        "input_tokens": made.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": made.reasoning_tokens},
        "total_tokens": made.prompt_tokens + output,
        **made.usage,
    }


def _tool_calls(choice: MadeChoice) -> list[dict[str, Any]] | None:
    if not choice.calls:
        return None
    return [
        {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}
        for id_, name, arguments in choice.calls
    ]


def chat_completion(made: Made, *, request_id: str, model: str) -> dict[str, Any]:
    """A chat completion: every choice, one usage for the request."""
    return {
        "id": "chatcmpl-" + request_id.removeprefix("req_"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": c.text,
                    "refusal": c.refusal,
                    **({"tool_calls": calls} if (calls := _tool_calls(c)) else {}),
                },
                "logprobs": {"content": c.logprobs, "refusal": None} if c.logprobs else None,
                "finish_reason": c.finish,
            }
            for i, c in enumerate(made.choices)
        ],
        "usage": _usage_chat(made),
        "system_fingerprint": "fp_promptgrid",
    }


def chat_stream(made: Made, *, request_id: str, model: str, usage: bool) -> list[Event]:
    """The chat completion as stream chunks (see the module docstring)."""
    base = {
        "id": "chatcmpl-" + request_id.removeprefix("req_"), "object": "chat.completion.chunk",
        "created": int(time.time()), "model": model, "system_fingerprint": "fp_promptgrid",
    }  # fmt: skip

    def chunk(index: int, delta: dict[str, Any], output: bool = True, **extra: Any) -> Event:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None, **extra}
        return _data({**base, "choices": [choice]}), output

    events = []
    for i, c in enumerate(made.choices):
        events.append(chunk(i, {"role": "assistant", "content": ""}, output=False))
        entries = iter(c.logprobs or [])
        for word in _pieces(c.text or ""):
            entry = next(entries, None)
            logprobs = {"content": [entry], "refusal": None} if entry is not None else None
            events.append(chunk(i, {"content": word}, logprobs=logprobs))
        for j, (id_, name, arguments) in enumerate(c.calls):
            call = {"index": j, "id": id_, "type": "function",
                    "function": {"name": name, "arguments": ""}}  # fmt: skip
            events.append(chunk(i, {"tool_calls": [call]}))
            more = {"index": j, "function": {"arguments": arguments}}
            events.append(chunk(i, {"tool_calls": [more]}))
        if c.refusal is not None:
            events.append(chunk(i, {"refusal": c.refusal}))
        if c.finish is not None:
            events.append(chunk(i, {}, output=False, finish_reason=c.finish))
    if usage:
        events.append((_data({**base, "choices": [], "usage": _usage_chat(made)}), False))
    events.append((b"data: [DONE]\n\n", False))
    return events


def response(made: Made, *, request_id: str, model: str) -> dict[str, Any]:
    """A Responses API response (``n`` is always 1 there: the first choice); a truncated one is
    still ``in_progress``."""
    choice = made.choices[0]
    return {
        "id": "resp_" + request_id.removeprefix("req_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if choice.finish is not None else "in_progress",
        "model": model,
        "output": _output_items(made, request_id),
        "usage": _usage_responses(made),
        "error": None,
        "incomplete_details": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "reasoning": {"effort": None, "summary": None},
        "metadata": {},
        "instructions": None,
        "temperature": None,
        "top_p": None,
    }


def _output_items(made: Made, request_id: str) -> list[dict[str, Any]]:
    choice = made.choices[0]
    rid = request_id.removeprefix("req_")
    items: list[dict[str, Any]] = []
    if made.reasoning_tokens or made.summary:
        summary = [{"type": "summary_text", "text": made.summary}] if made.summary else []
        items.append({"id": f"rs_{rid}", "type": "reasoning", "summary": summary})
    if choice.text is not None or choice.refusal is not None:
        if choice.refusal is not None:
            part: dict[str, Any] = {"type": "refusal", "refusal": choice.refusal}
        else:
            part = {"type": "output_text", "text": choice.text, "annotations": [],
                    "logprobs": choice.logprobs or []}  # fmt: skip
        items.append({"id": f"msg_{rid}", "type": "message", "role": "assistant",
                      "status": "completed", "content": [part]})  # fmt: skip
    for id_, name, arguments in choice.calls:
        items.append({"id": f"fc_{id_}", "type": "function_call", "call_id": id_, "name": name,
                      "arguments": arguments, "status": "completed"})  # fmt: skip
    return items


def response_stream(made: Made, *, request_id: str, model: str) -> list[Event]:
    """The response as a stream of events (see the module docstring)."""
    whole = response(made, request_id=request_id, model=model)
    started = {**whole, "status": "in_progress", "output": [], "usage": None}
    events = [_event("response.created", {"response": started})]
    for index, item in enumerate(whole["output"]):
        opened = {**item, "status": "in_progress"}
        if item["type"] == "message":
            opened["content"] = []
        if item["type"] == "reasoning":
            opened["summary"] = []
        events.append(_event("response.output_item.added", {"output_index": index, "item": opened}))
        events += _item_deltas(item, {"item_id": item["id"], "output_index": index})
        events.append(_event("response.output_item.done", {"output_index": index, "item": item}))
    if made.choices[0].finish is not None:
        events.append(_event("response.completed", {"response": whole}))
    return events


def _item_deltas(item: dict[str, Any], where: dict[str, Any]) -> list[Event]:
    """The delta events of one output item."""
    events = []
    if item["type"] == "reasoning":
        for k, part in enumerate(item["summary"]):
            delta = {**where, "summary_index": k, "delta": part["text"]}
            events.append(_event("response.reasoning_summary_text.delta", delta))
    elif item["type"] == "function_call":
        delta = {**where, "delta": item["arguments"]}
        events.append(_event("response.function_call_arguments.delta", delta, output=True))
    elif item["content"][0]["type"] == "refusal":
        delta = {**where, "content_index": 0, "delta": item["content"][0]["refusal"]}
        events.append(_event("response.refusal.delta", delta, output=True))
    else:
        part = item["content"][0]
        entries = iter(part["logprobs"])
        for word in _WORDS.findall(part["text"]):
            logprobs = [next(entries)] if part["logprobs"] else []
            delta = {**where, "content_index": 0, "delta": word, "logprobs": logprobs}
            events.append(_event("response.output_text.delta", delta, output=True))
        done = {**where, "content_index": 0, "text": part["text"]}
        events.append(_event("response.output_text.done", done))
    return events


def _pieces(text: str) -> list[str]:
    """The chunks of a streamed text: word by word, and a word holding a UTF-16 surrogate
    pair as two code points (``"surrogates"``) split between them, as a server that cuts
    UTF-16 text anywhere would."""
    words = _WORDS.findall(text)
    if text.isascii():
        return words
    return [piece for word in words for piece in _PAIR.sub("\\1\0", word).split("\0")]


_PAIR = re.compile("([\ud800-\udbff])(?=[\udc00-\udfff])")


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _event(kind: str, payload: dict[str, Any], output: bool = False) -> Event:
    body = {"type": kind, **payload}
    return f"event: {kind}\n".encode() + _data(body), output
