"""A race's expected calls, from a pilot: a full-grid run of the same experiment already in the
store, replayed as the planned race.

How many calls a race makes depends on how far apart the variants are, which nothing knows
before a call; a full-grid run of the experiment (an earlier version of the grid, or a pilot on
a few cases) does know it. Replaying that run as the planned race (:mod:`.replay`, no call)
gives the share of its grid the race would have used; the plan applies that share to the grid
it plans. It is an estimate: a race on more cases separates the variants with a smaller share
of them, so a pilot's share is on the high side. Without such a run there is no expected
figure, and the plan says how to get one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import PromptgridError
from ..spec.schema import RaceSpec, ScoreSpec
from ..store import STORE_NAME, Store, races

__all__ = ["Pilot", "pilot_share"]

#: Runs looked at, newest first: a plan stays quick in a folder of many runs.
_LOOKED_AT = 5


@dataclass(frozen=True)
class Pilot:
    """A stored full-grid run replayed as the planned race: it would have used ``calls`` of
    its ``grid_calls``."""

    run_id: str
    calls: int
    grid_calls: int

    @property
    def share(self) -> float:
        """The share of the pilot's grid the race would have used."""
        return self.calls / max(self.grid_calls, 1)


def pilot_share(results_dir: Path, experiment: str, race: RaceSpec) -> Pilot | None:
    """The newest finished full-grid run of ``experiment`` in ``results_dir`` that holds the
    race's score, replayed as ``race``; None if there is none (or none can be replayed)."""
    from ..table import load_run, with_score_columns
    from .replay import replay_table

    if not (results_dir / STORE_NAME).is_file():
        return None
    with Store.in_dir(results_dir, readonly=True) as store:
        finished = [r for r in store.runs(experiment) if r.status == "finished"]
        for info in finished[:_LOOKED_AT]:
            if race.score.split(".")[0] not in (info.spec.get("scores") or {}):
                continue  # it never scored what decides: not loaded at all
            if races.load(store, info.run_id) is not None:
                continue  # a race's table lacks the cells it did not run
            try:
                df = load_run(store, with_score_columns(store, info))
                scores = {k: ScoreSpec.model_validate(v)
                          for k, v in (info.spec.get("scores") or {}).items()}  # fmt: skip
                replayed = replay_table(df, race, scores)
            except (PromptgridError, ValueError, KeyError):
                continue  # not this score, not this factor: not a pilot for this race
            return Pilot(info.run_id, replayed.calls, replayed.grid_calls)
    return None
