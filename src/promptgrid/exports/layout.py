"""Which of a run's columns are the inputs a reader compares by, and which are fixed.

Files meant for reading (the XLSX sheets, the HTML report) put the inputs that vary first and
move what is the same in every row (fixed params, a var with one value, ``repeat`` when there is
one sample per cell) to the far right. The split is read from the run's stored experiment, so a
streamed export knows it before the first row: a var with several values, a case column and a
parameter given as an axis (a list; for ``stop``, ``tools`` and ``modalities`` a list of lists)
vary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec.schema import LIST_VALUED_PARAMS
from ..store import RunInfo

__all__ = ["RunLayout", "run_layout"]


@dataclass(frozen=True)
class RunLayout:
    """A run's input columns split by whether they vary, each list in table order."""

    varying: tuple[str, ...]  #: case columns, vars and params that take several values
    fixed: tuple[str, ...]  #: vars and params with one value (the same in every row)
    repeats: int  #: samples per cell

    @property
    def inputs(self) -> tuple[str, ...]:
        """What tells one row from another: the prompt, what varies, and ``repeat`` if > 1."""
        return ("prompt", *self.varying, *(("repeat",) if self.repeats > 1 else ()))


def run_layout(run: RunInfo) -> RunLayout:
    """Split ``run``'s var and param columns into those that vary and those that are fixed."""
    spec = run.spec
    vars_ = spec.get("vars") or {}
    params = spec.get("params") or {}
    varying: list[str] = []
    fixed: list[str] = []
    for name, _ in run.columns:
        if name in params:
            many = _is_axis(name, params[name])
        elif name in vars_:
            many = len(vars_[name]) > 1
        else:
            many = True  # a case column: a dataset's rows differ
        (varying if many else fixed).append(name)
    return RunLayout(tuple(varying), tuple(fixed), int(spec.get("repeats") or 1))


def _is_axis(name: str, raw: Any) -> bool:
    if not isinstance(raw, list) or len(raw) < 2:
        return False
    return name not in LIST_VALUED_PARAMS or any(isinstance(v, list) for v in raw)
