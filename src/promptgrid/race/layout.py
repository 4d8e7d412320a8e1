"""Where a race's blocks sit in the grid: the cells of (variant, block), and back.

A cell's index is a mixed-radix number over the grid's axes in grid order (see ``grid``):
prompt, case row, each var, each parameter, then the repeat. A race's factor is one of these
axes (the prompt, a var or a parameter); a *block* is one combination of the others, repeats
left out (they stay inside their block), numbered ``0 .. n_blocks - 1`` in grid order. That
is the numbering the core's block indices use, and the one ``replay`` finds in a full-grid
table (blocks in order of first appearance), so a live race and a replay of the same data see
the same blocks in the same order.

Pure arithmetic on the experiment's axis sizes: no cell is rendered or hashed here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import UsageError
from ..spec import Experiment

__all__ = ["Layout", "label"]

Indexes = NDArray[np.int64]


def label(value: Any) -> str:
    """A level of the factor as the race names it: text as it is, a number or a bool as
    Python prints it (the table's column shows the same), anything else as compact JSON."""
    if isinstance(value, str | bool | int | float) or value is None:
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Layout:
    """The grid seen by a race on ``factor``: its ``variants`` (the factor's levels, in grid
    order), the ``sizes`` of every axis in grid order (the repeat last) and the factor's
    ``axis`` among them."""

    factor: str
    variants: tuple[str, ...]
    sizes: tuple[int, ...]
    axis: int

    @classmethod
    def of(cls, experiment: Experiment, factor: str) -> Layout:
        """The layout of ``experiment`` raced on ``factor`` (a prompt, var or parameter);
        :class:`UsageError` if two of its levels would bear the same name."""
        vars_, params = list(experiment.vars), list(experiment.param_axes)
        if factor == "prompt":
            axis, levels = 0, list(experiment.templates)
        elif factor in experiment.vars:
            axis, levels = 2 + vars_.index(factor), list(experiment.vars[factor])
        else:
            axis = 2 + len(vars_) + params.index(factor)
            levels = list(experiment.param_axes[factor])
        sizes = (
            len(experiment.templates), experiment.cases.count,
            *(len(v) for v in experiment.vars.values()),
            *(len(v) for v in experiment.param_axes.values()), experiment.file.repeats,
        )  # fmt: skip
        variants = tuple(label(v) for v in levels)
        if len(set(variants)) != len(variants):
            raise UsageError(f"race.factor: {factor!r} has values that print alike "
                             f"({', '.join(variants)}): give them distinct values")  # fmt: skip
        return cls(factor, variants, sizes, axis)

    @property
    def repeats(self) -> int:
        """Cells of one variant on one block."""
        return self.sizes[-1]

    @property
    def n_blocks(self) -> int:
        """Blocks: the combinations of every axis but the factor and the repeat."""
        return math.prod(self.sizes[:-1]) // self.sizes[self.axis]

    @property
    def total(self) -> int:
        """Cells of the grid."""
        return math.prod(self.sizes)

    def cells(self, variants: Sequence[int], blocks: Sequence[int]) -> Indexes:
        """The cells of each of ``variants`` (positions in :attr:`variants`) on each of
        ``blocks``, repeats included: an array ``variants × blocks × repeats`` of indexes."""
        strides = self._strides()
        base = np.zeros(len(blocks), dtype=np.int64)
        rest = np.asarray(blocks, dtype=np.int64)
        for axis in reversed(self._others()):  # the block number's digits, last axis fastest
            base += (rest % self.sizes[axis]) * strides[axis]
            rest //= self.sizes[axis]
        own = np.asarray(variants, dtype=np.int64) * strides[self.axis]
        repeats = np.arange(self.repeats, dtype=np.int64)
        return own[:, None, None] + base[None, :, None] + repeats[None, None, :]

    def variant_of(self, indexes: Indexes) -> Indexes:
        """The variant (position in :attr:`variants`) of each cell index."""
        return (indexes // self._strides()[self.axis]) % self.sizes[self.axis]

    def block_of(self, indexes: Indexes) -> Indexes:
        """The block of each cell index."""
        strides, block = self._strides(), np.zeros_like(indexes)
        for axis in self._others():
            block = block * self.sizes[axis] + (indexes // strides[axis]) % self.sizes[axis]
        return block

    def _others(self) -> list[int]:
        """The axes a block combines: all but the factor's and the repeat."""
        return [axis for axis in range(len(self.sizes) - 1) if axis != self.axis]

    def _strides(self) -> list[int]:
        return [math.prod(self.sizes[axis + 1 :]) for axis in range(len(self.sizes))]
