"""One experiment's parameters mapped onto Chat Completions and the Responses API, and the
parameters that have no equivalent."""

from __future__ import annotations

from typing import Any

import pytest

from promptgrid.apis import (
    chat_arguments,
    param_problem,
    parse_structured,
    responses_arguments,
    structured_format,
    structured_schema,
)
from promptgrid.columns import RESERVED
from promptgrid.spec.schema import ParamValues

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
FLAT_TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
FLAT_FORMAT = {"type": "json_schema", "name": "a", "schema": {"type": "object"}}


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        pytest.param({"max_tokens": 9}, {"max_output_tokens": 9}, id="max_tokens"),
        pytest.param({"max_completion_tokens": 9}, {"max_output_tokens": 9}, id="max_completion"),
        pytest.param({"reasoning_effort": "low"}, {"reasoning": {"effort": "low"}}, id="effort"),
        pytest.param(
            {"reasoning_effort": "high", "reasoning": {"summary": "auto"}},
            {"reasoning": {"summary": "auto", "effort": "high"}},
            id="effort-and-summary",
        ),
        pytest.param(
            {"response_format": SCHEMA_FORMAT}, {"text": {"format": FLAT_FORMAT}}, id="json-schema"
        ),
        pytest.param(
            {"response_format": {"type": "json_object"}, "verbosity": "low"},
            {"text": {"format": {"type": "json_object"}, "verbosity": "low"}},
            id="json-object-and-verbosity",
        ),
        pytest.param(
            {
                "tools": [TOOL, {"type": "web_search"}],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
            },
            {
                "tools": [FLAT_TOOL, {"type": "web_search"}],
                "tool_choice": {"type": "function", "name": "f"},
            },
            id="tools",
        ),
        pytest.param(
            {"logprobs": True, "top_logprobs": 3},
            {"include": ["message.output_text.logprobs"], "top_logprobs": 3},
            id="logprobs",
        ),
        pytest.param({"logprobs": False, "n": 1}, {}, id="no-op"),
        pytest.param(
            {"temperature": 0.2, "top_p": 0.9, "stream": True, "store": False},
            {"temperature": 0.2, "top_p": 0.9, "stream": True, "store": False},
            id="same-in-both",
        ),
    ],
)
def test_written_parameters_map_onto_the_responses_api(
    written: dict[str, Any], sent: dict[str, Any]
) -> None:
    assert responses_arguments(written) == sent


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        pytest.param({"max_output_tokens": 9}, {"max_completion_tokens": 9}, id="max_output"),
        pytest.param({"reasoning": {"effort": "low"}}, {"reasoning_effort": "low"}, id="effort"),
        pytest.param(
            {"text": {"format": FLAT_FORMAT, "verbosity": "high"}},
            {"response_format": SCHEMA_FORMAT, "verbosity": "high"},
            id="text-format",
        ),
        pytest.param({"tools": [FLAT_TOOL]}, {"tools": [TOOL]}, id="flat-tools"),
    ],
)
def test_responses_names_map_onto_chat(written: dict[str, Any], sent: dict[str, Any]) -> None:
    assert chat_arguments(written) == sent


def test_chat_parameters_pass_through_untouched() -> None:
    params = {"temperature": 0, "max_tokens": 5, "tools": [TOOL], "seed": 1}
    assert chat_arguments(params) is params  # the plain path copies nothing


@pytest.mark.parametrize(
    ("api", "name", "value", "says"),
    [
        ("responses", "stop", "\n", "'stop' has no equivalent in the Responses API"),
        ("responses", "seed", 1, "'seed' has no equivalent"),
        ("responses", "logit_bias", {"1": 2}, "'logit_bias' has no equivalent"),
        ("responses", "n", 3, "n > 1 has no equivalent"),
        ("chat", "reasoning", {"effort": "low", "summary": "auto"}, "reasoning.summary"),
        ("chat", "text", {"format": {"type": "text"}, "extra": 1}, "text.extra"),
    ],
)
def test_a_parameter_without_an_equivalent_is_named(
    api: str, name: str, value: Any, says: str
) -> None:
    problem = param_problem(api, name, value)
    assert problem is not None and says in problem[0] and problem[1]


@pytest.mark.parametrize(
    ("api", "name", "value"),
    [("responses", "n", 1), ("responses", "temperature", 1.0), ("chat", "stop", "x"),
     ("chat", "reasoning", {"effort": "low"}), ("responses", "max_tokens", 5)],
)  # fmt: skip
def test_parameters_with_an_equivalent_pass(api: str, name: str, value: Any) -> None:
    assert param_problem(api, name, value) is None


def test_structured_outputs_are_recognised_in_either_spelling() -> None:
    assert structured_format({"response_format": SCHEMA_FORMAT}) == "json_schema"
    assert structured_format({"text": {"format": FLAT_FORMAT}}) == "json_schema"
    assert structured_format({"response_format": {"type": "json_object"}}) == "json_object"
    assert structured_format({"response_format": {"type": "text"}}) is None
    assert structured_format({}) is None
    assert structured_schema({"response_format": SCHEMA_FORMAT}) == {"type": "object"}
    assert structured_schema({"text": {"format": FLAT_FORMAT}}) == {"type": "object"}


def test_parsing_keeps_the_value_and_says_why_it_failed() -> None:
    assert parse_structured('{ "b": 1,  "a": [1, 2] }') == ('{"b":1,"a":[1,2]}', None)
    parsed, error = parse_structured('{"b": ')
    assert parsed is None and error is not None and error.startswith("not JSON")
    assert parse_structured(None)[1] == "no text to parse (the answer was a refusal or a tool call)"


def test_no_parameter_is_named_like_a_result_column() -> None:
    # A parameter is a column of the table too: logprobs once was both.
    assert not set(ParamValues.model_fields) & RESERVED
