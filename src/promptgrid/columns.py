"""The columns of the result table, defined once.

A run's table is ``BEFORE``, then its own input columns (case columns, vars, params, in that
order), then ``AFTER``. Each column has a kind — ``str``, ``int``, ``float``, ``bool`` or
``json`` (JSON text) — from which the Arrow schema of the DataFrame and of every file is built.
A var, case column or parameter may not take a result column's name (``RESERVED``).

A request that asked for several choices (``n > 1``) gives one row per choice, numbered by
``choice``; its usage and cost are on the ``choice`` 0 row only (the server reports them once
per request), while ``latency_s``, ``ttft_s`` and ``tokens_per_s`` describe the request and are
on each of its rows. A failed request is one row (``choice`` 0).
"""

from __future__ import annotations

Column = tuple[str, str]  # (name, kind)

BEFORE: tuple[Column, ...] = (("run_id", "str"), ("cell_id", "str"), ("prompt", "str"))
AFTER: tuple[Column, ...] = (
    ("repeat", "int"), ("choice", "int"), ("messages", "str"), ("response", "str"),
    ("finish_reason", "str"), ("tool_calls", "json"), ("parsed", "json"),
    ("parse_error", "str"), ("refusal", "str"), ("token_logprobs", "json"),
    ("reasoning_summary", "str"), ("status", "str"), ("error_type", "str"),
    ("http_status", "int"), ("error", "str"), ("attempts", "int"), ("prompt_tokens", "int"),
    ("completion_tokens", "int"), ("cached_tokens", "int"), ("reasoning_tokens", "int"),
    ("cost_usd", "float"), ("latency_s", "float"), ("ttft_s", "float"),
    ("tokens_per_s", "float"), ("resolved_model", "str"), ("request_id", "str"),
    ("cached", "bool"),
)  # fmt: skip
#: Columns that hold one value per choice (the rest describe the request or the cell).
PER_CHOICE: tuple[str, ...] = (
    "response", "finish_reason", "tool_calls", "parsed", "parse_error", "refusal",
    "token_logprobs",
)  # fmt: skip
#: Columns counted once per request: on the ``choice`` 0 row only.
ONCE_PER_REQUEST: tuple[str, ...] = (
    "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_usd",
)  # fmt: skip

#: Names an input column may not take.
RESERVED: frozenset[str] = frozenset(name for name, _ in (*BEFORE, *AFTER))
#: Result columns (not inputs): everything but the run, the prompt, the repeat and choice index.
RESULTS: frozenset[str] = RESERVED - {"run_id", "prompt", "repeat", "choice"}


def kind_of(type_names: set[str] | frozenset[str]) -> str:
    """The column kind for a set of Python type names seen in it (``{"int", "float"}`` ->
    ``float``; mixed or nested values -> ``json``)."""
    names = set(type_names) - {"NoneType"}
    if names <= {"int", "float"} and "float" in names:
        return "float"
    if len(names) == 1 and (name := next(iter(names))) in ("str", "int", "bool"):
        return name
    return "json" if names else "str"
