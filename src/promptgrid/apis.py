"""The two OpenAI APIs promptgrid speaks, and how one experiment's parameters map onto each.

An experiment writes its parameters once, in Chat Completions' names (``max_tokens``,
``reasoning_effort``, ``response_format``, ``tools`` as ``{type: function, function: {...}}``),
or in the Responses API's own names where that API has something Chat Completions has not
(``max_output_tokens``, ``reasoning: {effort, summary}``, ``text: {format, verbosity}``). The
same grid then runs against either API (``api: chat`` or ``api: responses``): this module turns
the written parameters into each API's arguments, and says which written parameter has no
equivalent in the chosen API (a validation error, before anything runs):

==========================================  ==============================================
written                                     Chat Completions / Responses
==========================================  ==============================================
``max_tokens``, ``max_completion_tokens``   as written / ``max_output_tokens``
``max_output_tokens``                       ``max_completion_tokens`` / as written
``reasoning_effort``                        as written / ``reasoning.effort``
``reasoning: {effort, summary}``            ``reasoning_effort`` (no ``summary``) / as written
``response_format``                         as written / ``text.format`` (flattened schema)
``verbosity``                               as written / ``text.verbosity``
``text: {format, verbosity}``               ``response_format``, ``verbosity`` / as written
``tools``, ``tool_choice``                  chat shape / flattened (``{type, name, ...}``)
``logprobs: true``, ``top_logprobs``        as written / ``include: [message.output_text.
                                            logprobs]``, ``top_logprobs``
``n``                                       as written / only ``n: 1``
``stop``, ``seed``, penalties,              as written / no equivalent
``logit_bias``, ``modalities``, ``audio``,
``prediction``, ``web_search_options``
==========================================  ==============================================

Everything else (``temperature``, ``top_p``, ``stream``, ``metadata``, ``store``, ...) is the
same in both. The mapping is applied by the provider, once per call, on what the grid hashed;
so the request's identity (``cell_id``) is the written parameters plus the API kind.

Structured outputs (``response_format`` or ``text.format`` of type ``json_schema`` or
``json_object``) are answered with JSON text; :func:`parse_structured` parses it for the
``parsed`` column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from . import untrusted

__all__ = [
    "APIS", "BATCH_URLS", "LOGPROBS_INCLUDE", "batch_url", "chat_arguments", "param_problem",
    "parse_structured", "responses_arguments", "structured_format", "structured_schema",
]  # fmt: skip

#: The API kinds an endpoint can speak.
APIS = ("chat", "responses")
#: The path of each API, as a Batch API line (and its batch) names it.
BATCH_URLS: Mapping[str, str] = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
#: What the Responses API must be asked to ``include`` to return logprobs.
LOGPROBS_INCLUDE = "message.output_text.logprobs"

#: Written parameters the Responses API has no equivalent for, and what to do instead.
_NO_RESPONSES_EQUIVALENT: Mapping[str, str] = {
    "stop": "stop sequences do not exist in the Responses API; use api: chat",
    "seed": "the Responses API takes no seed; use api: chat",
    "presence_penalty": "penalties do not exist in the Responses API; use api: chat",
    "frequency_penalty": "penalties do not exist in the Responses API; use api: chat",
    "logit_bias": "logit_bias does not exist in the Responses API; use api: chat",
    "modalities": "audio output is a Chat Completions feature; use api: chat",
    "audio": "audio output is a Chat Completions feature; use api: chat",
    "prediction": "predicted outputs are a Chat Completions feature; use api: chat",
    "web_search_options": "in the Responses API web search is a tool: tools: [{type: web_search}]",
}
#: Written parameters only the Responses API takes (they are mapped for Chat Completions).
_RESPONSES_NAMES = frozenset({"max_output_tokens", "reasoning", "text"})


def batch_url(api: str, *, azure: bool = False) -> str:
    """The ``url`` of a batch line (and the batch's ``endpoint``) for requests of ``api``;
    Azure OpenAI's batches name the path without ``/v1`` (its documentation's examples)."""
    url = BATCH_URLS[api]
    return url.removeprefix("/v1") if azure else url


def param_problem(api: str, name: str, value: Any) -> tuple[str, str] | None:
    """``(message, hint)`` if the written parameter ``name: value`` has no equivalent in
    ``api``, else ``None``."""
    if api == "responses":
        if name == "n" and value not in (None, 1):
            return (
                "n > 1 has no equivalent in the Responses API: it gives one answer per request",
                "use repeats: for several samples, or api: chat",
            )
        if name in _NO_RESPONSES_EQUIVALENT:
            return f"{name!r} has no equivalent in the Responses API", _NO_RESPONSES_EQUIVALENT[
                name
            ]
        return None
    if name == "reasoning" and isinstance(value, Mapping):
        extra = sorted(set(value) - {"effort"})
        if extra:
            return (
                f"reasoning.{extra[0]} has no equivalent in Chat Completions",
                "use api: responses (reasoning summaries are a Responses API feature), "
                "or write reasoning_effort: only",
            )
    if name == "text" and isinstance(value, Mapping):
        extra = sorted(set(value) - {"format", "verbosity"})
        if extra:
            return f"text.{extra[0]} has no equivalent in Chat Completions", "use api: responses"
    return None


def chat_arguments(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The written parameters as Chat Completions arguments (``params`` itself when nothing
    needs mapping: the common case costs one set intersection)."""
    if not _RESPONSES_NAMES.intersection(params) and not _needs_chat_tools(params):
        return params
    out = dict(params)
    if "max_output_tokens" in out:
        out.setdefault("max_completion_tokens", out.pop("max_output_tokens"))
    reasoning = out.pop("reasoning", None)
    if isinstance(reasoning, Mapping) and "effort" in reasoning:
        out.setdefault("reasoning_effort", reasoning["effort"])
    text = out.pop("text", None)
    if isinstance(text, Mapping):
        if "format" in text:
            out.setdefault("response_format", _chat_format(text["format"]))
        if "verbosity" in text:
            out.setdefault("verbosity", text["verbosity"])
    if "tools" in out:
        out["tools"] = [_chat_tool(t) for t in out["tools"]]
    if isinstance(out.get("tool_choice"), Mapping):
        out["tool_choice"] = _chat_tool(out["tool_choice"])
    return out


def responses_arguments(params: Mapping[str, Any]) -> dict[str, Any]:
    """The written parameters as Responses API arguments (names with no equivalent were
    refused at validation; any left are dropped here rather than sent)."""
    out: dict[str, Any] = {}
    text: dict[str, Any] = dict(params.get("text") or {})
    reasoning: dict[str, Any] = dict(params.get("reasoning") or {})
    include: list[str] = []
    for name, value in params.items():
        if name in ("max_tokens", "max_completion_tokens"):
            out.setdefault("max_output_tokens", value)
        elif name == "reasoning_effort":
            reasoning.setdefault("effort", value)
        elif name == "response_format":
            text.setdefault("format", _responses_format(value))
        elif name == "verbosity":
            text.setdefault("verbosity", value)
        elif name == "tools":
            out["tools"] = [_responses_tool(t) for t in value]
        elif name == "tool_choice":
            out["tool_choice"] = _responses_tool(value) if isinstance(value, Mapping) else value
        elif name == "logprobs":
            if value:
                include.append(LOGPROBS_INCLUDE)
        elif name in ("n", "text", "reasoning") or name in _NO_RESPONSES_EQUIVALENT:
            continue
        else:
            out[name] = value
    if text:
        out["text"] = text
    if reasoning:
        out["reasoning"] = reasoning
    if include:
        out["include"] = include
    return out


def structured_format(params: Mapping[str, Any]) -> str | None:
    """``"json_schema"`` or ``"json_object"`` when the request asks for a JSON answer (through
    ``response_format`` or ``text.format``), else ``None``."""
    fmt = params.get("response_format")
    if fmt is None:
        text = params.get("text")
        fmt = text.get("format") if isinstance(text, Mapping) else None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    return kind if kind in ("json_schema", "json_object") else None


def structured_schema(params: Mapping[str, Any]) -> Any:
    """The JSON schema a structured request asks its answer to fit (either API's spelling),
    or ``None``."""
    fmt = params.get("response_format")
    if isinstance(fmt, Mapping):
        inner = fmt.get("json_schema")
        return inner.get("schema") if isinstance(inner, Mapping) else None
    text = params.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    return fmt.get("schema") if isinstance(fmt, Mapping) else None


def parse_structured(text: str | None) -> tuple[str | None, str | None]:
    """A structured answer parsed: ``(JSON text, None)``, or ``(None, why it did not parse)``.

    The JSON text is re-serialised compactly (key order kept), so the ``parsed`` column holds
    exactly the value the model returned, whatever its spacing; a lone surrogate escape
    (``"\\ud800"``) in it becomes U+FFFD, as in any stored text. What a JSON parser must
    refuse is a reason, never an exception: ``NaN`` and ``Infinity`` (not JSON), a number too
    large for a float (``1e400``), nesting deeper than Python's stack."""
    if text is None:
        return None, "no text to parse (the answer was a refusal or a tool call)"
    try:
        value = untrusted.loads(text, parse_constant=_not_json, parse_float=_finite)
        out = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    except RecursionError:
        return None, "not JSON this program can read: nested too deeply"
    return untrusted.text(out), None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


# ------------------------------------------------------------------ shapes


def _responses_format(fmt: Any) -> Any:
    """``response_format`` -> ``text.format``: a JSON schema's ``json_schema`` object is
    flattened into the format itself."""
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" and "json_schema" in fmt:
        return {"type": "json_schema", **fmt["json_schema"]}
    return fmt


def _chat_format(fmt: Any) -> Any:
    """``text.format`` -> ``response_format`` (the inverse of :func:`_responses_format`)."""
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" and "json_schema" not in fmt:
        return {"type": "json_schema", "json_schema": {k: v for k, v in fmt.items() if k != "type"}}
    return fmt


def _responses_tool(tool: Any) -> Any:
    """A chat-shaped function tool (or tool choice) flattened: ``{type: function, name, ...}``."""
    if isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool:
        return {"type": "function", **tool["function"]}
    return tool


def _chat_tool(tool: Any) -> Any:
    """A flat function tool (or tool choice) nested the Chat Completions way."""
    if isinstance(tool, Mapping) and tool.get("type") == "function" and "function" not in tool:
        return {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
    return tool


def _needs_chat_tools(params: Mapping[str, Any]) -> bool:
    tools = params.get("tools")
    if tools and any(isinstance(t, Mapping) and "name" in t for t in tools):
        return True
    choice = params.get("tool_choice")
    return isinstance(choice, Mapping) and "name" in choice
