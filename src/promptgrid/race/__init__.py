"""Racing the variants: find the best at a fraction of the grid's calls, with a guarantee.

``core`` is the sequential decision (a pure state machine: scores in, eliminations out),
``evidence`` the anytime-valid test it rests on, ``replay`` a stored run replayed as a race.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "GROWTH", "Decision", "Elimination", "Outcome", "Race", "Round", "Rules", "Scale",
    "Standing", "StopReason", "block_order", "block_value", "drive",
]  # fmt: skip

if TYPE_CHECKING:
    from .core import (
        GROWTH,
        Decision,
        Elimination,
        Outcome,
        Race,
        Round,
        Rules,
        Scale,
        Standing,
        StopReason,
        block_order,
        block_value,
        drive,
    )


def __getattr__(name: str) -> object:
    # ``core`` (and numpy with it) is imported on first use: every run imports this package
    # (``race.options`` reads the ``race:`` option), few runs race.
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import core

    value = getattr(core, name)
    globals()[name] = value
    return value
