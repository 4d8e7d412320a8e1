"""Which cells pair across the levels of a factor: the rule ``contrast`` and ``decide`` share.

A *cell* is one combination of inputs under one level of the factor; its rows are its
samples (``repeat``, and ``choice`` with ``n > 1``). Two cells, of levels ``a`` and ``b``,
pair when they agree on every other input: by default every column
:func:`promptgrid.columns.is_input` names an input — told by name, never by position, so a
result, score or judge column is never a key wherever it sits, and a column subset, a
concatenation of runs or a CSV read back pairs like the table ``load()`` gives — or exactly
the columns a caller passes as ``on``.

The rule refuses (:class:`~promptgrid.errors.UsageError`, saying what to keep or pass) rather
than guess:

- **a cell appears twice under one level**: two rows share the level, every input and the
  sample index, so an input that tells them apart is missing (left out of the table; several
  runs without ``run_id``; repeats without ``repeat``);
- **a column conflicts**: it is fixed by the other inputs under each level, yet takes
  different values under ``a`` and ``b`` for the same other inputs (a score under another
  name, a label added to the table). Pairing on it would silently leave those cells out.

An input whose values ``a`` and ``b`` do not share at all *changed along with the factor*
(run against run: the model went from ``gpt-4o-mini`` to ``gpt-4.1``). As in
:func:`promptgrid.analysis.align`, it is left out of that pair's pairing and reported,
provided the other inputs still tell each level's cells apart (else nothing pairs, and the
verdict says they share no value of it). With ``on=``, the columns are taken as given: only
the first refusal applies.

Everything runs on integer codes (one ``pandas.factorize`` per column), so the dtype of a
column (``Int64`` from ``load()``, ``int64`` or ``object`` from a CSV) does not matter and a
million rows pair in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..columns import SAMPLE_INDEX, is_input
from ..errors import UsageError

__all__ = ["Match", "Pairing", "codes", "combine", "pair", "shown", "values"]

#: Values of a changed input shown per level, at most.
SHOWN_VALUES = 5


@dataclass(frozen=True)
class Match:
    """The cells of two levels that pair: ``a_cells[i]`` with ``b_cells[i]`` (cell numbers
    of the :class:`Pairing`, in ``a``'s order). ``changed``: each input left out because it
    changed along with the factor, with (some of) its values under ``a`` and under ``b``;
    ``unshared``: inputs ``a`` and ``b`` share no value of that had to be kept (so nothing
    pairs)."""

    a_cells: np.ndarray
    b_cells: np.ndarray
    changed: dict[str, tuple[list[Any], list[Any]]]
    unshared: tuple[str, ...]


@dataclass(frozen=True)
class Pairing:
    """How the rows of a table fall into cells, and which inputs pair them (see the module
    docstring). Build it with :func:`pair`."""

    factor: str
    #: The inputs cells are paired on (every one, fixed ones included).
    on: tuple[str, ...]
    #: The sample index columns present (``repeat``, ``choice``).
    samples: tuple[str, ...]
    #: Whether ``on`` was given by the caller.
    explicit: bool
    #: The factor's levels, in order of first appearance.
    levels: list[Any]
    #: The cell of each row (0 .. cells - 1, in order of first appearance).
    row_cell: np.ndarray
    #: Per cell: its level (an index into ``levels``), its first row, and the code of each
    #: input of ``on`` (a column each).
    cell_level: np.ndarray
    cell_row: np.ndarray
    cell_codes: np.ndarray
    #: The table's ``on`` columns, to name values in messages.
    frame: pd.DataFrame

    @property
    def cells(self) -> int:
        """How many cells the table has."""
        return len(self.cell_level)

    def varying(self) -> tuple[str, ...]:
        """The inputs of ``on`` that take more than one value (the others pair nothing)."""
        return tuple(
            name
            for j, name in enumerate(self.on)
            if len(self.cell_codes) and self.cell_codes[:, j].max() > 0
        )

    def match(self, a: int, b: int) -> Match:
        """The cells of level ``a`` and level ``b`` (indices into ``levels``) that pair."""
        ca = np.flatnonzero(self.cell_level == a)
        cb = np.flatnonzero(self.cell_level == b)
        use = list(range(len(self.on)))
        changed: dict[str, tuple[list[Any], list[Any]]] = {}
        unshared: tuple[str, ...] = ()
        if not self.explicit:
            apart = [j for j in use if not _shares(self.cell_codes, ca, cb, j)]
            rest = [j for j in use if j not in apart]
            if apart and _unique(self.cell_codes, ca, rest) and _unique(self.cell_codes, cb, rest):
                changed = {self.on[j]: (self._values(ca, j), self._values(cb, j)) for j in apart}
                use = rest
            else:
                unshared = tuple(self.on[j] for j in apart)
        ka, kb = _keys(self.cell_codes, ca, cb, use)
        _, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
        if not self.explicit and use and (len(ia) < len(ca) or len(ib) < len(cb)):
            self._refuse_conflicts(a, b, ca, cb, use)
        order = np.argsort(ia, kind="stable")
        return Match(ca[ia[order]], cb[ib[order]], changed, unshared)

    def _values(self, cells: np.ndarray, j: int) -> list[Any]:
        rows = self.cell_row[cells]
        values = self.frame.iloc[rows, j].drop_duplicates()
        return [_plain(v) for v in values.iloc[:SHOWN_VALUES]]

    def _refuse_conflicts(
        self, a: int, b: int, ca: np.ndarray, cb: np.ndarray, use: list[int]
    ) -> None:
        """Refuse when an input is fixed by the others under each level but differs between
        ``a`` and ``b`` for the same others (see the module docstring)."""
        table = self.cell_codes
        for j in use:
            others = [k for k in use if k != j]
            if not (_unique(table, ca, others) and _unique(table, cb, others)):
                continue  # j tells cells apart: a real input
            ka, kb = _keys(table, ca, cb, others)
            _, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
            differ = np.flatnonzero(table[ca[ia], j] != table[cb[ib], j])
            if len(differ):
                first = differ[0]
                raise self._conflict(a, b, j, others, ca[ia[first]], cb[ib[first]])

    def _conflict(
        self, a: int, b: int, j: int, others: list[int], cell_a: int, cell_b: int
    ) -> UsageError:
        name, factor = self.on[j], self.factor
        row_a, row_b = self.cell_row[cell_a], self.cell_row[cell_b]
        varying = self.varying()
        where = ", ".join(
            f"{self.on[k]}={shown(self.frame.iloc[row_a, k])}"
            for k in others
            if self.on[k] in varying
        )
        level_a, level_b = shown(self.levels[a]), shown(self.levels[b])
        keep = [self.on[k] for k in others if self.on[k] in varying]
        return UsageError(
            f"cannot pair {factor}={level_a} with {factor}={level_b}: column {name!r} is not "
            f"an input of the grid, or {factor} changed it: for the same "
            f"{where or 'other inputs'} it is {shown(self.frame.iloc[row_a, j])} under "
            f"{level_a} and {shown(self.frame.iloc[row_b, j])} under {level_b}, so pairing on "
            f"it would leave those cells out. If it is a result (a score, a label you added), "
            f"drop it or name it score_{name}; to pair on chosen inputs, pass on={keep!r}"
        )


def pair(
    df: pd.DataFrame,
    factor: str,
    on: Sequence[str] | None = None,
    scores: Sequence[str] = (),
    coded: Mapping[str, np.ndarray] | None = None,
) -> Pairing:
    """The cells of ``df`` and the inputs that pair them across the levels of ``factor``;
    ``scores``: the columns compared, never inputs whatever their names; ``coded``: columns'
    :func:`codes` already computed (``decide`` pairs several factors of one table).

    Raises :class:`~promptgrid.errors.UsageError` when a cell appears twice under one level
    (see the module docstring).
    """
    names = [str(c) for c in df.columns]
    if on is None:
        keys = [c for c in names if c != factor and c not in scores and is_input(c)]
    else:
        keys = list(dict.fromkeys(on))
        missing = [c for c in keys if c not in names]
        if missing:
            raise UsageError(f"on= names no column {', '.join(map(repr, missing))} of the table")
        if factor in keys:
            raise UsageError(f"on= may not hold the factor {factor!r}: cells pair across it")
    samples = [c for c in SAMPLE_INDEX if c in names and c not in keys and c != factor]
    known = dict(coded or {})

    def code(name: str) -> np.ndarray:
        if name not in known:
            known[name] = codes(df[name])[0]
        return known[name]

    level = code(factor)
    inputs = [code(c) for c in keys]
    cell = combine([level, *inputs], len(df))
    index = [found for found in map(code, samples) if found.max(initial=0) > 0]
    row = combine([cell, *index], len(df)) if index else cell
    if len(row) and row.max() + 1 < len(row):
        raise _twice(df, factor, keys, samples, on is not None, row)
    first = np.flatnonzero(~pd.Series(cell).duplicated().to_numpy())
    cell_codes = np.column_stack(inputs)[first] if inputs else np.zeros((len(first), 0), int)
    return Pairing(
        factor=factor,
        on=tuple(keys),
        samples=tuple(samples),
        explicit=on is not None,
        levels=values(df[factor]),
        row_cell=cell,
        cell_level=level[first],
        cell_row=first,
        cell_codes=cell_codes,
        frame=df[keys],
    )


def shown(value: Any) -> str:
    """A value as a message shows it: strings quoted, at most 60 characters."""
    text = repr(_plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------- helpers


def codes(series: pd.Series) -> tuple[np.ndarray, int]:
    """Integer codes of a column, 0, 1, ... in order of first appearance (missing values are
    one code of their own), and how many there are."""
    try:
        found, uniques = pd.factorize(series, use_na_sentinel=False)
    except TypeError:  # unhashable values (lists, dicts) in a hand-built table
        found, uniques = pd.factorize(series.map(repr), use_na_sentinel=False)
    return found.astype(np.int64), len(uniques)


def values(series: pd.Series) -> list[Any]:
    """The distinct values of a column in order of first appearance, as Python values."""
    found, _ = codes(series)
    first = np.flatnonzero(~pd.Series(found).duplicated().to_numpy())
    return [_plain(v) for v in series.iloc[first]]


def combine(columns: Sequence[np.ndarray], n: int) -> np.ndarray:
    """One code per distinct combination of several code columns (0, 1, ... in order of
    first appearance); all zeros for none."""
    varying = [c for c in columns if len(c) and c.max() > c.min()]  # a constant tells nothing
    if not varying:
        return np.zeros(n, dtype=np.int64)
    out, bound = varying[0].astype(np.int64), int(varying[0].max()) + 1
    for more in varying[1:]:
        size = int(more.max()) + 1
        if bound * size >= 2**62:  # renumber before the product could overflow
            out = pd.factorize(out)[0].astype(np.int64)
            bound = int(out.max()) + 1
        out, bound = out * size + more, bound * size
    return pd.factorize(out)[0].astype(np.int64)


def _keys(
    table: np.ndarray, ca: np.ndarray, cb: np.ndarray, use: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the cells ``ca`` and ``cb`` on the inputs ``use``, comparable across both."""
    both = np.concatenate([ca, cb])
    key = combine([table[both, j] for j in use], len(both))
    return key[: len(ca)], key[len(ca) :]


def _unique(table: np.ndarray, cells: np.ndarray, use: list[int]) -> bool:
    """Whether the inputs ``use`` alone tell the cells apart."""
    key = combine([table[cells, j] for j in use], len(cells))
    return len(cells) < 2 or int(key.max()) + 1 == len(cells)


def _shares(table: np.ndarray, ca: np.ndarray, cb: np.ndarray, j: int) -> bool:
    """Whether the cells ``ca`` and ``cb`` have a value of input ``j`` in common."""
    seen = np.zeros(int(table[:, j].max(initial=0)) + 1, dtype=bool)
    seen[table[ca, j]] = True
    return bool(seen[table[cb, j]].any())


def _twice(
    df: pd.DataFrame,
    factor: str,
    keys: list[str],
    samples: list[str],
    explicit: bool,
    row: np.ndarray,
) -> UsageError:
    """The refusal for two rows that are the same cell and sample."""
    both = np.flatnonzero(pd.Series(row).duplicated(keep=False).to_numpy())
    first = both[0]
    second = both[row[both] == row[first]][1]
    values = df.iloc[first]
    inputs = ", ".join(f"{c}={shown(values[c])}" for c in [*keys, *samples] if c in df.columns)
    head = (
        f"cannot pair the cells of {factor}: rows {first} and {second} (by position) are "
        f"both {factor}={shown(values[factor])} with the same "
        f"{'inputs (' + inputs + ')' if inputs else 'inputs (none)'}, so the table does "
        "not say which cell each row is. "
    )
    if explicit:
        return UsageError(head + "Add to on= the input that tells them apart.")
    absent = {"run_id": "run_id (several runs)", "repeat": "repeat (repeated samples)",
              "choice": "choice (several choices, n > 1)"}  # fmt: skip
    keep = [text for column, text in absent.items() if column not in df.columns]
    return UsageError(
        head
        + "Keep the columns that tell them apart: "
        + ", ".join([*keep, "the case columns, vars and params of the grid"])
        + "; or pass on=[...] with the inputs that identify a cell."
    )


def _plain(value: Any) -> Any:
    """A numpy or pandas scalar as the Python value it holds (missing as None)."""
    if value is None or (not isinstance(value, (list, dict, tuple)) and pd.isna(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value
