"""What a race would cost, next to the full grid's plan: at least its first round, expected
(from a pilot), at most the full grid.

A race's calls depend on how far apart the variants turn out to be, which no plan knows
before a call: when one variant leads clearly, all the others can go after the first round
(``min_cases`` blocks of every variant); when all are tied, the race runs the whole grid. The
plan states those two ends, and in between the expected calls when the store holds a
full-grid run of the experiment to replay as this race (:mod:`.pilot`): the share of its grid
that race used, applied to this grid. Costs scale the plan's with the share of the grid's
calls: every variant runs the same blocks, so a share of the calls is that share of each
variant's cost (judges included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import money
from ..spec.schema import RaceSpec
from .layout import Layout
from .pilot import Pilot

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
    #: Expected, from replaying a stored full-grid run (``pilot``); None without one.
    calls_expected: int | None = None
    cost_expected_usd: float | None = None
    pilot: str | None = None  #: the run replayed
    pilot_share: float | None = None  #: the share of its grid the race used there

    @classmethod
    def of(
        cls,
        race: RaceSpec,
        layout: Layout,
        cost_expected: float | None,
        cost_worst: float | None,
        pilot: Pilot | None = None,
    ) -> RacePlan:
        """The race ``race`` over ``layout``, with the full grid's costs, and what it is
        expected to use if ``pilot`` (a stored full-grid run replayed as it) is given."""
        first = min(race.min_cases, layout.n_blocks)
        calls_min = len(layout.variants) * first * layout.repeats
        expected: int | None = None
        if pilot is not None:
            expected = min(max(round(pilot.share * layout.total), calls_min), layout.total)

        def scaled(calls: int | None) -> float | None:
            if calls is None or cost_expected is None:
                return None
            return cost_expected * calls / layout.total

        return cls(
            race.score, race.factor, len(layout.variants), layout.n_blocks, first, calls_min,
            layout.total, scaled(calls_min), cost_worst, expected, scaled(expected),
            None if pilot is None else pilot.run_id, None if pilot is None else pilot.share,
        )  # fmt: skip

    def lines(self, row: Callable[[str, str], str]) -> list[str]:
        """The plan's lines for the race (``row(name, value)`` lays out one)."""

        def usd(value: float | None) -> str:
            return "unknown" if value is None else money.usd(value)

        share = self.calls_min / self.calls_max
        lines = [
            f"  race on {self.score} by {self.factor}: {self.variants} variants × "
            f"{self.blocks:,} blocks",
            row("race calls (at least)", f"{self.calls_min:,}"),
            f"  (the first round, {self.first_round:,} blocks a variant, {share:.1%} of the "
            "grid: if one variant led clearly)",
        ]
        if self.calls_expected is not None and self.pilot_share is not None:
            lines += [
                row("race calls (expected)", f"{self.calls_expected:,}"),
                f"  (run {self.pilot} replayed as this race used {self.pilot_share:.1%} of its "
                "grid)",
            ]
        lines += [
            row("race calls (at most)", f"{self.calls_max:,}"),
            "  (the full grid: if the variants were all tied)",
            row("race cost (at least)", usd(self.cost_min_usd)),
        ]
        if self.calls_expected is not None:
            lines.append(row("race cost (expected)", usd(self.cost_expected_usd)))
        lines.append(row("race cost (at most)", usd(self.cost_max_usd)))
        if self.calls_expected is None:
            lines += [
                "  (expected: unknown until the variants are seen; a full-grid run of this",
                "  experiment in the store, even a small pilot, gives it: promptgrid run",
                "  FILE --no-race on a few cases, then plan again)",
            ]
        return lines
