"""A run's race as its readers see it: who won, who tied, who was dropped when and by whom,
and the calls saved against the full grid.

Built once from the race's stored record (:class:`~promptgrid.store.races.RaceRecord`, which
the engine wrote round by round) and handed to every view — ``promptgrid show``, the end of
``promptgrid run``, the XLSX summary, the HTML report's race tab — so they cannot disagree.
Means, leads and intervals are in the score's units.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from ..store.races import RaceRecord
from .replay import readable

__all__ = ["Standings"]

#: Why a race stopped, in words.
REASONS = {
    "keep": "{keep} left",
    "exhausted": "the cases ran out: the survivors are statistically tied, ranked by mean",
    "budget": "stopped by the budget: the survivors are tied, ranked by mean (resume with a "
    "higher --max-cost to go on)",
    None: "not finished: resume the run to go on",
}


@dataclass(frozen=True, repr=False)
class Standings:
    """A raced run's result. ``table`` has one row per variant: rank, status (``winner``,
    ``kept``, ``tied``, ``dropped``, ``running``), mean, cases scored, calls, and for a
    dropped one the round and blocks after which it went, against whom, with that rival's
    lead and its anytime-valid interval. Prints as a short report; a notebook shows the
    table."""

    record: RaceRecord

    @property
    def winner(self) -> str | None:
        """The variant the race names (its best-ranked survivor), once it stopped."""
        return self.record.state.winner

    @property
    def tied(self) -> tuple[str, ...]:
        """Survivors the race could not separate, best mean first."""
        return self.record.tied

    @property
    def calls(self) -> int:
        """Calls the run made (its result rows)."""
        return self.record.calls

    @property
    def grid_calls(self) -> int:
        """Calls of the full grid."""
        return self.record.grid_calls

    @property
    def saved(self) -> int:
        """Calls of the full grid the race did not make."""
        return self.record.saved

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per variant, best first (see the class docstring)."""
        drops = {d.variant: d for d in self.record.drops}
        rows = []
        for place in self.record.state.standings:
            gone = drops.get(place.variant)
            rows.append({
                "rank": place.rank, self.record.factor: place.variant, "status": place.status,
                "mean": place.mean, "cases": place.cases, "calls": place.calls,
                "dropped_round": gone.round if gone else None,
                "after_blocks": gone.blocks if gone else None,
                "against": gone.against if gone else None,
                "lead": gone.estimate if gone else None,
                "lead_low": gone.low if gone else None,
                "lead_high": gone.high if gone else None,
            })  # fmt: skip
        table: pd.DataFrame = pd.DataFrame(rows)
        for name in ("dropped_round", "after_blocks"):
            if name in table.columns:
                table[name] = table[name].astype("Int64")
        return table

    def named(self) -> tuple[str, str]:
        """Whom the race names, as (``winner``, ``tied``, ``kept`` or ``running``, names)."""
        state = self.record.state
        kept = [p.variant for p in state.standings if p.status == "kept"]
        if len(self.tied) > 1:
            return "tied", ", ".join(self.tied)
        if kept:
            return "kept", ", ".join(kept)
        if self.winner is not None:
            return "winner", self.winner
        leader = state.standings[0].variant if state.standings else "-"
        return "running", f"no winner yet (leading: {leader})"

    def why(self) -> str:
        """When and why the race stopped, in words."""
        state, keep = self.record.state, self.record.settings.get("keep", 1)
        rounds = f"{state.rounds} round{'s' * (state.rounds != 1)}"
        reason = REASONS[state.stopped].format(keep="one" if keep == 1 else keep)
        return f"after {rounds} and {state.blocks:,} blocks ({reason})"

    def summary(self) -> list[str]:
        """The race in three lines: settings; whom it names, when and why; calls."""
        r, s = self.record, self.record.settings
        share = r.calls / r.grid_calls if r.grid_calls else 1.0
        status, names = self.named()
        named = names if status == "running" else f"{status}: {names}"
        return [
            f"race on {r.score} by {r.factor}: confidence {s.get('confidence', 0.95):g}, "
            f"min_cases {s.get('min_cases', 20)}, keep {s.get('keep', 1)}, seed "
            f"{s.get('seed', 0)}; {r.n_blocks:,} blocks",
            f"{named}; {self.why()}",
            f"calls: {r.calls:,} of the full grid's {r.grid_calls:,} ({share:.1%}; "
            f"{r.saved:,} saved)",
        ]

    def report(self) -> str:
        """The race in words and a table (what ``promptgrid show`` prints after a raced
        run's rows)."""
        return "\n".join([*self.summary(), "", readable(self.table, self.record.factor)])

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        return self.report()

    def _repr_html_(self) -> str:
        text = html.escape("\n".join(self.summary()))
        return f"<pre>{text}</pre>{self.table.to_html(index=False, na_rep='')}"
