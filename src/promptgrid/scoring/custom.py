"""``python: module:function`` scorers: user code called with the answer and the row.

The function is imported when the experiment is validated (so a missing module is an error at
its file line) and called once per answered row as ``function(answer, row)``, where ``row`` is a
dict: ``prompt`` (the prompt's name), ``vars`` (vars and case columns), ``params``, ``repeat``,
``messages`` (as sent) and ``cell_id``. It returns:

- a bool (the column is bool) or a number (float): the score ``score_<name>``;
- ``None``: no score for this row (the cell stays empty, and is not an error);
- a mapping of names to bools or numbers: several scores, ``score_<name>.<key>`` each.

Anything it raises is this score's error for this row (the run goes on).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

from ..spec.scores import ScoreDef
from ..spec.yamlmarks import shorten
from .checks import ScoreFailure

__all__ = ["Output", "call"]

#: (column name less ``score_``, kind, value): one output of a scorer for one row.
Output = tuple[str, str, float | None]
_KEY = re.compile(r"^[A-Za-z0-9_]+$")


def call(score: ScoreDef, answer: str | None, row: Mapping[str, Any]) -> list[Output]:
    """The outputs of ``score``'s function for one row; :class:`ScoreFailure` if it raised or
    returned something that is not a score."""
    assert score.function is not None
    try:
        result = score.function(answer, row)
    except Exception as exc:  # the user's code: whatever it raises is this row's score error
        raise ScoreFailure(f"{type(exc).__name__}: {shorten(str(exc), 300)}") from None
    if isinstance(result, Mapping):
        out = []
        for key, value in result.items():
            if not isinstance(key, str) or not _KEY.match(key):
                raise ScoreFailure(f"returned a mapping with key {key!r}: use letters, digits, _")
            out.append(_one(f"{score.name}.{key}", value))
        return out
    return [_one(score.name, result)]


def _one(name: str, value: Any) -> Output:
    if value is None:
        return name, "float", None
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return name, "bool", float(bool(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return name, "float", None if math.isnan(number) else number
    raise ScoreFailure(
        f"returned {type(value).__name__} {shorten(repr(value), 60)}: expected a bool, a "
        "number, None or a mapping of them"
    )
