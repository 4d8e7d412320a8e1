"""Racing the variants: find the best at a fraction of the grid's calls, with a guarantee.

``core`` is the sequential decision (a pure state machine: scores in, eliminations out),
``evidence`` the anytime-valid test it rests on, ``replay`` a stored run replayed as a race.
"""

from __future__ import annotations

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

__all__ = [
    "GROWTH", "Decision", "Elimination", "Outcome", "Race", "Round", "Rules", "Scale",
    "Standing", "StopReason", "block_order", "block_value", "drive",
]  # fmt: skip
