"""The columns of the result table, defined once.

A run's table is ``BEFORE``, then its own input columns (case columns, vars, params, in that
order), then ``AFTER``, then its score columns (:func:`score_columns`), if it has scores.
Each column has a kind — ``str``, ``int``, ``float``, ``bool`` or ``json`` (JSON text) — from
which the Arrow schema of the DataFrame and of every file is built.
A var, case column or parameter may not take a result column's name (``RESERVED``).

A request that asked for several choices (``n > 1``) gives one row per choice, numbered by
``choice``; its usage and cost are on the ``choice`` 0 row only (the server reports them once
per request), while ``latency_s``, ``ttft_s`` and ``tokens_per_s`` describe the request and are
on each of its rows. A failed request is one row (``choice`` 0).

``batch_id`` names the provider's batch that answered a row in batch mode (empty for rows
answered online or from the cache).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

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
    ("batch_id", "str"), ("cached", "bool"),
)  # fmt: skip
#: Names an input column may not take.
RESERVED: frozenset[str] = frozenset(name for name, _ in (*BEFORE, *AFTER))
#: Result columns (not inputs): everything but the run, the prompt, the repeat and choice index.
RESULTS: frozenset[str] = RESERVED - {"run_id", "prompt", "repeat", "choice"}
#: A cell's sample index: its repeats and, with ``n > 1``, its choices (neither is an input).
SAMPLE_INDEX: tuple[str, ...] = ("repeat", "choice")


def kind_of(type_names: set[str] | frozenset[str]) -> str:
    """The column kind for a set of Python type names seen in it (``{"int", "float"}`` ->
    ``float``; mixed or nested values -> ``json``)."""
    names = set(type_names) - {"NoneType"}
    if names <= {"int", "float"} and "float" in names:
        return "float"
    if len(names) == 1 and (name := next(iter(names))) in ("str", "int", "bool"):
        return name
    return "json" if names else "str"


#: After the score columns: why a row has no score (JSON: score -> reason), and what the
#: judges' calls about the row took (the graded call's own tokens and cost are apart).
SCORE_ERRORS: Column = ("score_errors", "json")
JUDGE_USAGE: tuple[Column, ...] = (("judge_tokens", "int"), ("judge_cost_usd", "float"))


def is_input(name: str) -> bool:
    """Whether a column is one of the grid's inputs (``run_id``, ``prompt``, a case column, var
    or param), told by its name alone, wherever it sits and whatever its type (a table read
    back from CSV is read the same): not a result column, a sample index, a score
    (``score_*``: the scores, their reasons, ``score_errors``) or the judges' usage. A column
    a user adds is taken for an input unless its name says otherwise."""
    return not (
        name in RESULTS
        or name in SAMPLE_INDEX
        or name.startswith("score_")
        or name in (column for column, _ in JUDGE_USAGE)
    )


def score_columns(
    scores: Mapping[str, Mapping[str, Any]], outputs: Callable[[str], list[Column]]
) -> list[Column]:
    """The score columns of a run whose ``scores:`` (as in the file) are ``scores``.

    In declaration order: ``score_<name>`` for each score (bool; a judge on a 1..N scale: int)
    and, for a judge, ``score_<name>.reason`` (its stated reason); a ``python:`` scorer has the
    columns ``outputs(name)`` says it filled (``(name, kind)``: several for one that returns a
    mapping, ``name.key``), else ``score_<name>`` (float). Then ``score_errors``, and with a
    judge ``judge_tokens`` and ``judge_cost_usd``.
    """
    out: list[Column] = []
    judged = False
    for name, entry in scores.items():
        if "python" in entry:
            found = outputs(name) or [(name, "float")]
            out += [(f"score_{column}", kind) for column, kind in found]
        elif "judge" in entry:
            scale = (entry["judge"] or {}).get("scale", "pass_fail")
            out += [(f"score_{name}", "bool" if scale == "pass_fail" else "int"),
                    (f"score_{name}.reason", "str")]  # fmt: skip
            judged = True
        else:
            out.append((f"score_{name}", "bool"))
    if scores:
        out.append(SCORE_ERRORS)
    return out + (list(JUDGE_USAGE) if judged else [])
