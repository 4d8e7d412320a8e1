"""The store's record of a run's race: its settings, every round's standings, every elimination.

- ``races``              one row per raced run: the settings it ran with, its variants, its
                         blocks, where it stands (rounds, blocks run, why it stopped, the
                         winner) and every variant's standing, as JSON.
- ``race_rounds``        one row per round and variant that ran in it: its mean so far, the
                         leader's lead over it with that lead's anytime-valid interval, and
                         whether the round dropped it.
- ``race_eliminations``  one row per dropped variant: when (round, blocks run, cases scored),
                         against whom, that rival's lead and its interval.

Means, leads and intervals are in the score's units (a judge's 1..N, a python scorer's
bounds); ``mean`` may be NULL (nothing scored yet). A round's rows, its eliminations and the
race's new standing are written in one transaction, before the next round starts. A resumed
race replays its complete rounds from the stored scores and writes their record again
(:func:`rewrite`): what is stored is always what the scores say. Functions take the
:class:`~promptgrid.store.Store` first, so the engine runs them on its store thread
(``StoreIO.call``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from .core import Store
from .failures import guarded
from .records import (
    Drop,
    Place,
    RaceRecord,
    RaceState,
    RoundRow,
    RunInfo,
    dumps,
    now,
)  # fmt: skip

__all__ = [
    "Drop", "Place", "RaceRecord", "RaceState", "RoundRow", "attach", "begin", "load",
    "record", "rewrite", "score_values",
]  # fmt: skip


@guarded("recording the run's race")
def begin(
    store: Store,
    run_id: str,
    *,
    settings: Mapping[str, Any],
    variants: Sequence[str],
    n_blocks: int,
    repeats: int,
    bounds: tuple[float, float],
) -> None:
    """Record a race about to start (nothing if the run has one already: a resume)."""
    with store.transaction():
        store.db.execute(
            "INSERT OR IGNORE INTO races (run_id, settings_json, variants_json, n_blocks, "
            "repeats, low, high, rounds, blocks, standings_json, updated_at) "
            "VALUES (?,?,?,?,?,?,?,0,0,'[]',?)",
            (run_id, dumps(dict(settings)), dumps(list(variants)), n_blocks, repeats,
             bounds[0], bounds[1], now()),
        )  # fmt: skip


@guarded("recording a round of the race")
def record(
    store: Store, run_id: str, state: RaceState, rows: Sequence[RoundRow], drops: Sequence[Drop]
) -> None:
    """Record one round (its rows and eliminations) and the race's new state, in one
    transaction; with no rows, only the state (a stop)."""
    with store.transaction():
        _insert(store, run_id, rows, drops)
        _set_state(store, run_id, state)


@guarded("recording the race's rounds")
def rewrite(
    store: Store, run_id: str, state: RaceState, rows: Sequence[RoundRow], drops: Sequence[Drop]
) -> None:
    """Replace every round and elimination of the run's race, and its state."""
    with store.transaction():
        for table in ("race_rounds", "race_eliminations"):
            store.db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        _insert(store, run_id, rows, drops)
        _set_state(store, run_id, state)


def _insert(store: Store, run_id: str, rows: Sequence[RoundRow], drops: Sequence[Drop]) -> None:
    store.db.executemany(
        "INSERT OR REPLACE INTO race_rounds (run_id, round, variant, blocks, cases, mean, "
        "leader, lead, lead_low, lead_high, dropped) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(run_id, *astuple(r)) for r in rows],
    )
    store.db.executemany(
        "INSERT OR REPLACE INTO race_eliminations (run_id, variant, round, blocks, cases, mean, "
        "against, pairs, estimate, low, high) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(run_id, *astuple(d)) for d in drops],
    )


def _set_state(store: Store, run_id: str, state: RaceState) -> None:
    store.db.execute(
        "UPDATE races SET rounds = ?, blocks = ?, stopped = ?, winner = ?, standings_json = ?, "
        "updated_at = ? WHERE run_id = ?",
        (state.rounds, state.blocks, state.stopped, state.winner,
         dumps([asdict(p) for p in state.standings]), now(), run_id),
    )  # fmt: skip


def astuple(value: RoundRow | Drop) -> tuple[Any, ...]:
    """A row's values in column order (a bool as 0/1)."""
    return tuple(int(v) if isinstance(v, bool) else v for v in asdict(value).values())


@guarded("reading the run's race")
def load(store: Store, run_id: str) -> RaceRecord | None:
    """The run's race, or None if it did not race."""
    try:
        head = store.db.execute(
            "SELECT settings_json, variants_json, n_blocks, repeats, low, high, rounds, blocks, "
            "stopped, winner, standings_json FROM races WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    except sqlite3.OperationalError as exc:  # a store read-only from before races
        if "no such table" in str(exc):
            return None
        raise
    if head is None:
        return None
    settings, variants, n_blocks, repeats, low, high, rounds, blocks, stopped, winner, places = head
    rows = store.db.execute(
        "SELECT round, variant, blocks, cases, mean, leader, lead, lead_low, lead_high, dropped "
        "FROM race_rounds WHERE run_id = ? ORDER BY round, rowid",
        (run_id,),
    )
    drops = store.db.execute(
        "SELECT variant, round, blocks, cases, mean, against, pairs, estimate, low, high "
        "FROM race_eliminations WHERE run_id = ? ORDER BY round, rowid",
        (run_id,),
    )
    counts = store.db.execute(
        "SELECT (SELECT COUNT(*) FROM results WHERE run_id = ?), "
        "(SELECT total FROM runs WHERE run_id = ?)",
        (run_id, run_id),
    ).fetchone()
    state = RaceState(
        rounds, blocks, stopped, winner, tuple(Place(**p) for p in json.loads(places))
    )
    return RaceRecord(
        run_id, json.loads(settings), tuple(json.loads(variants)), n_blocks, repeats, low, high,
        state, tuple(_round_row(r) for r in rows), tuple(Drop(*d) for d in drops),
        int(counts[0]), int(counts[1]),
    )  # fmt: skip


def _round_row(row: Sequence[Any]) -> RoundRow:
    number, variant, blocks, cases, mean, leader, lead, low, high, dropped = row
    return RoundRow(number, variant, blocks, cases, mean, leader, lead, low, high, bool(dropped))


def attach(store: Store, run: RunInfo) -> RunInfo:
    """The run with its race (for the views), if it raced."""
    import dataclasses

    race = load(store, run.run_id)
    return run if race is None else dataclasses.replace(run, race=race)


@guarded("reading the race's scores")
def score_values(
    store: Store, run_id: str, name: str, cells: Iterable[int]
) -> dict[int, float | None]:
    """The value of score column ``name`` (``score_<name>``) of each of ``cells`` that has
    a result row (None: no score: an error row, or the scorer gave none)."""
    wanted = sorted(set(cells))
    out: dict[int, float | None] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        marks = ",".join("?" * len(part))
        rows = store.db.execute(
            f"SELECT r.idx, s.value FROM results r LEFT JOIN scores s ON s.run_id = r.run_id "
            f"AND s.idx = r.idx AND s.name = ? WHERE r.run_id = ? AND r.idx IN ({marks})",
            (name, run_id, *part),
        )
        out.update({idx: value for idx, value in rows})
    return out
