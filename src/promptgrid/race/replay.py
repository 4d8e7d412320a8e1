"""A stored full-grid run replayed as a race, without a call: would the race have found the
same winner, when would it have dropped each variant, and how many calls would it have used?

The table is cut into the race's blocks (rows equal on every input but the factor and the
repeat); each (variant, block) gets the mean of its normalised scores (None if none), and the
race (``core``) is driven round by round on those values, exactly as a live race would be.
Calls are counted as the cells (``cell_id``) each (variant, block) holds.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import ValidationError

from ..analysis import input_columns
from ..errors import UsageError
from ..spec.schema import RaceSpec, ScoreSpec
from .core import Outcome, Race, Round, Rules, Scale, drive

__all__ = ["Replay", "race_settings", "readable", "replay_table"]


def race_settings(stored: Mapping[str, Any] | None, given: Mapping[str, Any] | None) -> RaceSpec:
    """The race to replay: the run's own ``race:`` settings (``stored``) with ``given`` over
    them, validated like the file's."""
    data = {**(stored or {}), **{k: v for k, v in (given or {}).items() if v is not None}}
    if "score" not in data:
        raise UsageError("which score decides the race? give race={'score': NAME} "
                         "(or --score NAME): the run's experiment has no race:")  # fmt: skip
    try:
        return RaceSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        key = f"race.{where}" if where else "race"
        raise UsageError(f"{key}: {first['msg'].lower()} (got {first.get('input')!r})") from None


@dataclass(frozen=True, repr=False)
class Replay:
    """What a race would have done on a stored run. ``table`` has one row per variant (rank,
    status, race and full-grid means, calls, when and against whom it was dropped, with the
    lead and its interval in the score's units); ``outcome`` is the race's own result.
    Prints as a short report; a notebook shows the table."""

    settings: RaceSpec
    outcome: Outcome
    table: pd.DataFrame
    calls: int
    grid_calls: int
    grid_best: str

    @property
    def winner(self) -> str:
        """The variant the race names (its best-ranked survivor)."""
        assert self.outcome.winner is not None
        return self.outcome.winner

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        return self.report()

    def report(self) -> str:
        """The replay in words and a table (what ``promptgrid replay`` prints)."""
        s, o = self.settings, self.outcome
        why = {
            "keep": f"{s.keep} left" if s.keep > 1 else "one left",
            "exhausted": f"blocks ran out: {', '.join(map(str, o.tied))} statistically tied, "
            "ranked by mean",
        }[o.reason or "exhausted"]
        share = self.calls / self.grid_calls if self.grid_calls else 1.0
        agree = "the race agrees" if self.grid_best == self.winner else "the race differs"
        lines = [
            f"race on {s.score} by {s.factor}: confidence {s.confidence:g}, min_cases "
            f"{s.min_cases}, keep {s.keep}, seed {s.seed}; {o.n_blocks:,} blocks",
            f"winner: {self.winner}; stopped after {o.rounds} round{'s' * (o.rounds != 1)} and "
            f"{o.blocks:,} blocks "
            f"({why})",
            f"calls: {self.calls:,} of the full grid's {self.grid_calls:,} ({share:.1%}; "
            f"{self.grid_calls - self.calls:,} saved)",
            f"full grid's best by mean: {self.grid_best} ({agree})",
            "",
            readable(self.table, s.factor),
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        text = html.escape("\n".join(self.report().splitlines()[:4]))
        return f"<pre>{text}</pre>{self.table.to_html(index=False, na_rep='')}"


def readable(table: pd.DataFrame, factor: str) -> str:
    """A standings table (a replay's, or a run's race: ``race.standings``) as text: one
    column for the drop and one for the lead with its interval."""

    def num(value: Any, sign: str = "") -> str:
        return "" if value is None or pd.isna(value) else f"{value:{sign}.3g}"

    dropped = [
        "" if pd.isna(r) else f"round {r}, after {b:,} blocks, by {who}"
        for r, b, who in zip(table["dropped_round"], table["after_blocks"], table["against"],
                             strict=True)
    ]  # fmt: skip
    lead = [
        "" if pd.isna(x) else f"{num(x, '+')} [{num(lo, '+')}, {num(hi, '+')}]"
        for x, lo, hi in zip(table["lead"], table["lead_low"], table["lead_high"], strict=True)
    ]
    shown: dict[str, Any] = {
        "rank": table["rank"], factor: table[factor], "status": table["status"],
        "mean": table["mean"].map(num),
    }  # fmt: skip
    if "grid_mean" in table.columns:
        shown["full grid"] = table["grid_mean"].map(num)
    shown.update({"cases": table["cases"], "calls": table["calls"], "dropped": dropped,
                  "its lead [interval]": lead})  # fmt: skip
    text: str = pd.DataFrame(shown).to_string(index=False)
    return text


def replay_table(
    df: pd.DataFrame, settings: RaceSpec, scores: Mapping[str, ScoreSpec] | None = None
) -> Replay:
    """Replay ``df`` (a full-grid table) as the race ``settings`` describe; ``scores`` (the
    run's score definitions, if known) give a judge's scale."""
    factor, column = settings.factor, _score_column(df, settings.score)
    if factor not in df.columns:
        raise UsageError(f"no column {factor!r} in the table: race a prompt, a var or a "
                         "parameter")  # fmt: skip
    scale = Scale(*settings.bounds_for(scores or {}))
    variants = [str(v) for v in dict.fromkeys(df[factor].tolist())]
    if settings.keep >= len(variants):
        raise UsageError(f"keep={settings.keep}, but {factor!r} has {len(variants)} value(s) "
                         "in the table: nothing to race")  # fmt: skip
    # A table without ``repeat`` (built by hand) has its scores among the "inputs": not keys.
    keys = [c for c in input_columns(df) if c not in (factor, "repeat")
            and not c.startswith(("score_", "judge_"))]  # fmt: skip
    work = pd.DataFrame({
        "variant": df[factor].astype(str).to_numpy(),
        "block": _block_ids(df, keys, factor),
        "value": _normalised(df[column], scale),
        "cell": df["cell_id"].to_numpy() if "cell_id" in df.columns else np.arange(len(df)),
    })  # fmt: skip
    groups = work.groupby(["variant", "block"], sort=False)
    n_blocks = int(work["block"].max()) + 1
    shape = (len(variants), n_blocks)
    values, calls = np.full(shape, np.nan), np.zeros(shape, dtype=np.int64)
    where = (
        groups.size().index.get_level_values(0).map(variants.index).to_numpy(),
        groups.size().index.get_level_values(1).to_numpy(),
    )
    values[where] = groups["value"].mean().to_numpy()  # NaN where no sample was scored
    calls[where] = groups["cell"].nunique().to_numpy()
    rules = Rules(settings.confidence, settings.min_cases, settings.keep, settings.seed)

    def round_scores(round_: Round) -> dict[str, list[float | None]]:
        rows = values[:, list(round_.blocks)]
        return {
            v: [None if math.isnan(x) else float(x) for x in rows[variants.index(v)]]
            for v in round_.variants
        }

    race = drive(Race.start(variants, n_blocks, rules), round_scores)
    return _summary(settings, race, values, calls, scale)


def _score_column(df: pd.DataFrame, score: str) -> str:
    column = score if score in df.columns else f"score_{score}"
    if column not in df.columns:
        have = [str(c) for c in df.columns if str(c).startswith("score_")]
        raise UsageError(f"no score {score!r} in the table; its scores: "
                         f"{', '.join(have) or 'none'}")  # fmt: skip
    return column


def _block_ids(df: pd.DataFrame, keys: list[str], factor: str) -> NDArray[np.int64]:
    """Each row's block: 0, 1, ... in the order blocks first appear. Two case rows with the
    same values are two blocks: the k-th of them under one variant pairs with the k-th under
    another."""
    samples = [c for c in ("repeat", "choice") if c in df.columns]
    text = df[[*keys, factor, *samples]].astype(str)  # json params are not hashable
    text["__nth__"] = text.groupby([*keys, factor, *samples], sort=False).cumcount()
    return np.asarray(text.groupby([*keys, "__nth__"], sort=False).ngroup(), dtype=np.int64)


def _normalised(series: pd.Series, scale: Scale) -> NDArray[np.float64]:
    """The score column as floats in [0, 1] (NaN: no score), by ``Scale.normalise``; a value
    outside the race's bounds is a clear error (the guarantee needs bounded scores)."""
    present = series.dropna()
    if not present.map(lambda v: isinstance(v, bool | np.bool_ | int | float | np.number)).all():
        raise UsageError(f"{series.name} is not a score: its values are not numbers or bools")
    try:
        out = [np.nan if pd.isna(v) else scale.normalise(v) for v in series.tolist()]
    except ValueError as exc:
        raise UsageError(f"{series.name}: {exc}: give the score's bounds "
                         "(race={'bounds': [low, high]}, --bounds LOW,HIGH)") from None  # fmt: skip
    return np.asarray(out, dtype=float)


def _summary(
    settings: RaceSpec, race: Race, values: np.ndarray, calls: np.ndarray, scale: Scale
) -> Replay:
    """The race's outcome as a table in the score's units, with each variant's calls."""
    outcome, variants, span = race.outcome(), race.variants, scale.high - scale.low
    scored = ~np.isnan(values)
    grid_means = np.where(scored, values, 0).sum(axis=1) / np.maximum(scored.sum(axis=1), 1)
    grid_means[~scored.any(axis=1)] = np.nan
    order = np.array(race.order)
    rows = []
    for standing in outcome.standings:
        i = variants.index(standing.variant)
        ran = order[: standing.blocks]
        gone = standing.elimination
        rows.append({
            "rank": standing.rank,
            settings.factor: standing.variant,
            "status": standing.status,
            "mean": None if standing.mean is None else scale.low + standing.mean * span,
            "grid_mean": scale.low + grid_means[i] * span,
            "cases": standing.cases,
            "calls": int(calls[i, ran].sum()),
            "dropped_round": gone.round if gone else None,
            "after_blocks": gone.blocks if gone else None,
            "against": gone.against if gone else None,
            "lead": gone.estimate * span if gone else None,
            "lead_low": gone.low * span if gone else None,
            "lead_high": gone.high * span if gone else None,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    for name in ("dropped_round", "after_blocks"):
        table[name] = table[name].astype("Int64")
    best = int(np.nanargmax(np.where(np.isnan(grid_means), -np.inf, grid_means)))
    return Replay(settings, outcome, table, int(table["calls"].sum()), int(calls.sum()),
                  variants[best])  # fmt: skip
