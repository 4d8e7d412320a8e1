"""What a race would cost, next to the full grid's plan: at least its first round, at most the
full grid.

A race's calls depend on how far apart the variants turn out to be, which no plan knows
before a call: when one variant leads clearly, all the others can go after the first round
(``min_cases`` blocks of every variant); when all are tied, the race runs the whole grid. The
plan states those two ends honestly instead of a guess in between; ``promptgrid replay`` of a
full-grid run (an earlier version, a pilot on a few cases) shows where a race on the user's
own data lands. Costs scale the plan's with the share of the grid's calls: every variant runs
the same blocks, so a share of the calls is that share of each variant's cost (judges
included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..spec.schema import RaceSpec
from .layout import Layout

__all__ = ["RacePlan"]


@dataclass(frozen=True)
class RacePlan:
    """A race's calls and cost: at least (its first round, if every variant but ``keep``
    were dropped after it) and at most (the full grid: none dropped)."""

    score: str
    factor: str
    variants: int
    blocks: int  #: blocks of the grid (combinations of the other axes)
    first_round: int  #: blocks in the first round (``min_cases``, at most all)
    calls_min: int
    calls_max: int
    cost_min_usd: float | None  #: the first round at the plan's expected cost
    cost_max_usd: float | None  #: the full grid's worst case

    @classmethod
    def of(
        cls,
        race: RaceSpec,
        layout: Layout,
        cost_expected: float | None,
        cost_worst: float | None,
    ) -> RacePlan:
        """The race ``race`` over ``layout``, with the full grid's costs."""
        first = min(race.min_cases, layout.n_blocks)
        calls_min = len(layout.variants) * first * layout.repeats
        share = calls_min / layout.total
        return cls(
            race.score, race.factor, len(layout.variants), layout.n_blocks, first, calls_min,
            layout.total, None if cost_expected is None else cost_expected * share, cost_worst,
        )  # fmt: skip

    def lines(self, row: Callable[[str, str], str]) -> list[str]:
        """The plan's lines for the race (``row(name, value)`` lays out one)."""

        def usd(value: float | None) -> str:
            return "unknown" if value is None else f"${value:,.4f}"

        share = self.calls_min / self.calls_max
        return [
            f"  race on {self.score} by {self.factor}: {self.variants} variants × "
            f"{self.blocks:,} blocks",
            row("race calls (at least)", f"{self.calls_min:,}"),
            f"  (the first round, {self.first_round:,} blocks a variant, {share:.1%} of the "
            "grid: if one variant led clearly)",
            row("race calls (at most)", f"{self.calls_max:,}"),
            "  (the full grid: if the variants were all tied)",
            row("race cost (at least)", usd(self.cost_min_usd)),
            row("race cost (at most)", usd(self.cost_max_usd)),
            "  (where a race lands in between depends on how far apart the variants are:",
            "  `promptgrid replay` of a full-grid run, even a small one, shows it on your data)",
        ]
