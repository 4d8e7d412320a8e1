"""``python: module:function`` scorers: user code called with the answer and the row.

The function is imported when the experiment is validated (so a missing module is an error at
its file line) and called once per answered row as ``function(answer, row)``, where ``row`` is a
dict: ``prompt`` (the prompt's name), ``vars`` (vars and case columns), ``params``, ``repeat``,
``messages`` (as sent) and ``cell_id``. It returns:

- a bool (the column is bool) or a finite number (float): the score ``score_<name>``;
- ``None``: no score for this row (the cell stays empty, and is not an error);
- a mapping of up to ``MAX_OUTPUTS`` names to bools or numbers: several scores,
  ``score_<name>.<key>`` each.

Anything it raises, and anything else it returns (a string, ``nan``, ``inf``, a number too
large for a float), is this score's error for this row; the run goes on. The function runs in
the scoring worker process (:mod:`.worker`), which also turns a ``sys.exit``, a crash or a call
past the score's ``timeout_s`` into that row's error.
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
_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
#: Scores one call may return: each is a column, and a run's columns must stay readable.
MAX_OUTPUTS = 100


def call(score: ScoreDef, answer: str | None, row: Mapping[str, Any]) -> list[Output]:
    """The outputs of ``score``'s function for one row; :class:`ScoreFailure` if it raised or
    returned something that is not a score."""
    assert score.function is not None
    try:
        result = score.function(answer, row)
    except Exception as exc:  # the user's code: whatever it raises is this row's score error
        raise ScoreFailure(f"{type(exc).__name__}: {shorten(str(exc), 300)}") from None
    if isinstance(result, Mapping):
        if len(result) > MAX_OUTPUTS:
            raise ScoreFailure(
                f"returned a mapping of {len(result):,} scores: at most {MAX_OUTPUTS} (each is "
                "a column)"
            )
        out = []
        for key, value in result.items():
            if not isinstance(key, str) or not _KEY.match(key):
                raise ScoreFailure(
                    f"returned a mapping with key {shorten(repr(key), 80)}: use letters, "
                    "digits and _ (at most 64)"
                )
            out.append(_one(f"{score.name}.{key}", value))
        return out
    return [_one(score.name, result)]


def _one(name: str, value: Any) -> Output:
    if value is None:
        return name, "float", None
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return name, "bool", float(bool(value))
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:
            raise ScoreFailure(f"returned {_shown(value)}: too large for a score") from None
        if not math.isfinite(number):
            hint = " (None: no score for this row)" if math.isnan(number) else ""
            raise ScoreFailure(f"returned {number}: a score is a finite number{hint}")
        return name, "float", number
    raise ScoreFailure(
        f"returned {type(value).__name__} {shorten(repr(value), 60)}: expected a bool, a "
        "number, None or a mapping of them"
    )


def _shown(value: Any) -> str:
    """A number for a message: 10**400 has 401 digits, and ``repr`` of an int that long fails."""
    try:
        return shorten(repr(value), 40)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        return f"an integer of {value.bit_length():,} bits"
