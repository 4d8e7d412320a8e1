"""The report's race tab, for a raced run: its summary, a chart of each variant's race and the
standings table (drawn by ``race.js``).

The chart shows, round by round, the leader's lead over each variant on their paired blocks,
with its anytime-valid interval, in the score's units: a variant is dropped once some rival's
lead over it is confidently above 0 (its interval clear of 0), marked where it happened. Read
from the race's record (``race.standings``), like ``promptgrid show`` and the XLSX summary.
"""

from __future__ import annotations

import math
from typing import Any

from ...race.standings import Standings
from ...store.races import RaceRecord

__all__ = ["race_data"]


def race_data(record: RaceRecord) -> dict[str, Any]:
    """The race tab's data: summary lines, the score's span, and per variant (best first)
    its standing, its drop and its path over the rounds ``[blocks, lead, low, high]``."""
    standings = Standings(record)
    paths: dict[str, list[list[float | None]]] = {v: [] for v in record.variants}
    for row in record.rows:
        paths[row.variant].append(
            [row.blocks, _num(row.lead), _num(row.lead_low), _num(row.lead_high)]
        )
    drops = {d.variant: d for d in record.drops}
    variants = []
    for place in record.state.standings:
        gone = drops.get(place.variant)
        variants.append({
            "name": place.variant, "rank": place.rank, "status": place.status,
            "mean": _num(place.mean), "cases": place.cases, "calls": place.calls,
            "dropped": None if gone is None else {
                "round": gone.round, "blocks": gone.blocks, "against": gone.against,
                "lead": _num(gone.estimate), "low": _num(gone.low), "high": _num(gone.high),
            },
            "path": paths.get(place.variant, []),
        })  # fmt: skip
    return {
        "summary": standings.summary(),
        "factor": record.factor,
        "score": record.score,
        "span": record.high - record.low,
        "blocks": record.state.blocks,
        "variants": variants,
    }


def _num(value: float | None) -> float | None:
    """A JSON number (None for missing or not finite)."""
    return value if value is not None and math.isfinite(value) else None
