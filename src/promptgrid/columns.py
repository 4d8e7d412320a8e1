"""The columns of the result table, defined once.

A run's table is ``BEFORE``, then its own input columns (case columns, vars, params, in that
order), then ``AFTER``. Each column has a kind — ``str``, ``int``, ``float``, ``bool`` or
``json`` (JSON text) — from which the Arrow schema of the DataFrame and of every file is built.
A var, case column or parameter may not take a result column's name (``RESERVED``).
"""

from __future__ import annotations

Column = tuple[str, str]  # (name, kind)

BEFORE: tuple[Column, ...] = (("run_id", "str"), ("cell_id", "str"), ("prompt", "str"))
AFTER: tuple[Column, ...] = (
    ("repeat", "int"), ("messages", "str"), ("response", "str"), ("finish_reason", "str"),
    ("status", "str"), ("error_type", "str"), ("http_status", "int"), ("error", "str"),
    ("attempts", "int"), ("prompt_tokens", "int"), ("completion_tokens", "int"),
    ("cached_tokens", "int"), ("reasoning_tokens", "int"), ("cost_usd", "float"),
    ("latency_s", "float"), ("resolved_model", "str"), ("request_id", "str"), ("cached", "bool"),
)  # fmt: skip

#: Names an input column may not take.
RESERVED: frozenset[str] = frozenset(name for name, _ in (*BEFORE, *AFTER))
#: Result columns (not inputs): everything but the run, the prompt and the repeat index.
RESULTS: frozenset[str] = RESERVED - {"run_id", "prompt", "repeat"}


def kind_of(type_names: set[str] | frozenset[str]) -> str:
    """The column kind for a set of Python type names seen in it (``{"int", "float"}`` ->
    ``float``; mixed or nested values -> ``json``)."""
    names = set(type_names) - {"NoneType"}
    if names <= {"int", "float"} and "float" in names:
        return "float"
    if len(names) == 1 and (name := next(iter(names))) in ("str", "int", "bool"):
        return name
    return "json" if names else "str"
