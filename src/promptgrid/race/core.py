"""A race between variants: after each round, which to drop and when to stop (a pure state machine).

The variants (the levels of the competing factor: prompts, models, ...) are run on *blocks*:
one block is one combination of every other axis of the grid (case × vars × other parameters),
with all its repeats. The blocks are taken in a seeded order (:func:`block_order`), in rounds:
the first has ``min_cases`` blocks, each later one adds 10 % of the blocks run so far
(``GROWTH``), and at least half of ``min_cases``: rounds big enough to keep calls in flight and
few waits for a round's slowest call, against a small overshoot past the block where a
variant could have gone (under 1 % of the grid's calls in benchmarks/bench_race.py).
Every survivor runs every block of a round.

A block's value for a variant is the mean of its samples (its repeats, and its choices when
``n > 1``), each normalised to [0, 1] (:class:`Scale`), or None when none was scored (error
rows): that block is then skipped by every pair involving the variant. Repeats stay inside
their block because two repeats of one case are not independent draws (they share the case's
difficulty): counting them as blocks of their own would break the test's assumption.

After each round, every ordered pair of survivors ``(a, b)`` holds a test of "``a`` scores
higher than ``b``" by betting (``evidence``), at level ``alpha / (K - 1)``, where
``alpha = 1 - confidence`` and ``K`` is the number of variants at the start. Once
``min_cases`` blocks have run, a survivor is dropped when another survivor is confidently
better (its test has rejected), the weakest first, never below ``keep`` survivors.

Why the best is kept with probability at least ``confidence``: let ``b*`` be a variant with
the highest expected score. It is dropped only if some test ``(a, b*)`` rejects, and the null
of each of these ``K - 1`` tests (``a`` no better than ``b*``) is true. Each test's wealth is a
nonnegative supermartingale whatever the data-dependent choices around it (which pairs are
still running, when the race stops, who leads), so by Ville's inequality it ever rejects with
probability at most ``alpha / (K - 1)``; a union bound over the ``K - 1`` pairs gives ``alpha``.
Pairs not involving ``b*`` never affect it, so no correction over all ``K (K - 1)`` pairs is
needed. This assumes blocks are independent draws of the cases the race should generalise to
(the seeded order makes any file order irrelevant) and that error rows are missing at random.
When several variants tie for best, the bound holds for each of them.

The race stops when ``keep`` survive (``keep``), when the blocks run out (``exhausted``: the
survivors are statistically tied, ranked by mean) or when the caller says so (``budget``).

:class:`Race` is immutable: ``observe`` returns the next state and the round's
:class:`Decision`. Decisions depend only on the variants, the number of blocks, the rules and
the scores, so replaying the stored scores round by round (:func:`drive`) reaches the same
state: that is how a resumed run continues a race.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from .evidence import PairEvidence, decision_bets, lower_bound, plug_in_bets

__all__ = [
    "GROWTH",
    "Decision",
    "Elimination",
    "Outcome",
    "Race",
    "Round",
    "Rules",
    "Scale",
    "Standing",
    "StopReason",
    "block_order",
    "block_value",
    "drive",
]

#: Each round after the first adds this fraction of the blocks run so far (at least one).
GROWTH = 0.1

#: Why a race stopped: ``keep`` survivors left, blocks ``exhausted``, or the ``budget``.
StopReason = Literal["keep", "exhausted", "budget"]
Scores = Mapping[str, Sequence[float | None]]


@dataclass(frozen=True)
class Rules:
    """The race's settings: the chance ``confidence`` that the best variant is never dropped,
    the blocks every variant runs before any elimination (``min_cases``), how many variants
    to ``keep``, and the ``seed`` of the block order."""

    confidence: float = 0.95
    min_cases: int = 20
    keep: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, not {self.confidence}")
        if self.min_cases < 1 or self.keep < 1:
            raise ValueError("min_cases and keep must be at least 1")


@dataclass(frozen=True)
class Scale:
    """The range a score's values lie in (bool: 0 to 1; a judge's 1..N scale: 1 to N)."""

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"a score range needs finite low < high, not {self.low}, {self.high}")

    def normalise(self, value: float) -> float:
        """``value`` mapped to [0, 1]; ValueError if it is not a finite number in range (the
        test's guarantee needs bounded scores: a value outside would void it)."""
        number = float(value)
        if not self.low <= number <= self.high:  # NaN fails too
            raise ValueError(
                f"score {value!r} is outside the race's range [{self.low}, {self.high}]"
            )
        return (number - self.low) / (self.high - self.low)


def block_value(samples: Iterable[float | None]) -> float | None:
    """A block's value for one variant: the mean of its scored samples (normalised), None if
    none was scored."""
    present = [s for s in samples if s is not None and not math.isnan(s)]
    return math.fsum(present) / len(present) if present else None


def block_order(n_blocks: int, seed: int) -> tuple[int, ...]:
    """The blocks ``0 .. n_blocks - 1`` in the race's order: sorted by a keyed hash
    (BLAKE2b) of each index, so the order depends on the seed alone and stays the same across
    Python and numpy versions (a resumed race must see the blocks in the same order)."""
    key = str(seed).encode()

    def rank(index: int) -> bytes:
        return hashlib.blake2b(str(index).encode(), key=key, digest_size=16).digest()

    return tuple(sorted(range(n_blocks), key=rank))


@dataclass(frozen=True)
class Round:
    """A round to run: each of ``variants`` on each of ``blocks`` (block indices, in race
    order). ``number`` counts from 1."""

    number: int
    blocks: tuple[int, ...]
    variants: tuple[str, ...]


@dataclass(frozen=True)
class Elimination:
    """A variant dropped: in ``round``, after ``blocks`` blocks of the race (``cases`` of them
    scored for it), because ``against`` scores confidently higher: over their ``pairs`` paired
    blocks ``against`` leads by ``estimate`` (normalised units), and the anytime-valid
    interval of that lead is ``[low, high]`` (each end at level ``1 - alpha / (K - 1)``;
    ``low > 0`` up to rounding)."""

    variant: str
    round: int
    blocks: int
    cases: int
    mean: float | None
    against: str
    pairs: int
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Decision:
    """What one round decided: who was dropped, who survives, the leader (highest mean) and
    whether the race stopped."""

    round: int
    blocks: int
    eliminated: tuple[Elimination, ...]
    survivors: tuple[str, ...]
    leader: str
    means: Mapping[str, float | None]
    stop: StopReason | None


@dataclass(frozen=True)
class Standing:
    """A variant at the end (or so far): its ``rank`` (1 = best), mean score (normalised),
    scored blocks (``cases``), blocks run, and ``status``: ``winner``, ``kept`` (one of
    ``keep > 1``), ``tied`` (not separated when the blocks or the budget ran out),
    ``running`` (the race goes on) or ``dropped`` (with its ``elimination``)."""

    variant: str
    rank: int
    mean: float | None
    cases: int
    blocks: int
    status: Literal["winner", "kept", "tied", "running", "dropped"]
    elimination: Elimination | None = None


@dataclass(frozen=True)
class Outcome:
    """The race's result: why it stopped (None: not yet), the winner (the best-ranked
    survivor), every variant's :class:`Standing`, and the block runs it took against the full
    grid's (``variants × blocks``)."""

    reason: StopReason | None
    winner: str | None
    standings: tuple[Standing, ...]
    eliminations: tuple[Elimination, ...]
    rounds: int
    blocks: int
    n_blocks: int

    @property
    def runs(self) -> int:
        """(variant, block) pairs run: calls divided by the cells per block."""
        return sum(s.blocks for s in self.standings)

    @property
    def grid_runs(self) -> int:
        """(variant, block) pairs of the full grid."""
        return len(self.standings) * self.n_blocks

    @property
    def tied(self) -> tuple[str, ...]:
        """The survivors the race could not separate (ranked by mean)."""
        return tuple(s.variant for s in self.standings if s.status == "tied")


@dataclass(frozen=True, eq=False)
class Race:
    """The state of a race. Start one with :meth:`start`; then, until :attr:`done`, run
    :meth:`next_round` and hand its scores to :meth:`observe`."""

    variants: tuple[str, ...]
    n_blocks: int
    rules: Rules
    order: tuple[int, ...]
    survivors: tuple[str, ...]
    position: int = 0  #: blocks run so far
    rounds: int = 0
    decisions: tuple[Decision, ...] = ()
    stopped: StopReason | None = None
    #: Block values in race order (variants × blocks; NaN: not run or not scored).
    values: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    evidence: PairEvidence = field(default_factory=lambda: PairEvidence.empty(0), repr=False)

    @classmethod
    def start(cls, variants: Sequence[str], n_blocks: int, rules: Rules | None = None) -> Race:
        """A race between ``variants`` (at least two) over ``n_blocks`` blocks."""
        rules = rules or Rules()
        names = tuple(variants)
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"a race needs at least two distinct variants, not {names}")
        if rules.keep >= len(names):
            raise ValueError(f"keep={rules.keep} leaves nothing to race among {len(names)}")
        if n_blocks < 1:
            raise ValueError("a race needs at least one block")
        return cls(
            names, n_blocks, rules, block_order(n_blocks, rules.seed), names,
            values=np.full((len(names), n_blocks), np.nan),
            evidence=PairEvidence.empty(len(names)),
        )  # fmt: skip

    @property
    def done(self) -> bool:
        """The race has stopped (see :attr:`stopped`)."""
        return self.stopped is not None

    @property
    def log_threshold(self) -> float:
        """A test rejects once its log-wealth reaches ``log((K - 1) / alpha)``."""
        return math.log((len(self.variants) - 1) / (1 - self.rules.confidence))

    def next_round(self) -> Round:
        """The round to run next."""
        if self.done:
            raise RuntimeError(f"the race has stopped ({self.stopped})")
        if self.position < self.rules.min_cases:
            size = self.rules.min_cases - self.position
        else:
            size = max(math.ceil(self.position * GROWTH), math.ceil(self.rules.min_cases / 2))
        end = min(self.n_blocks, self.position + size)
        return Round(self.rounds + 1, self.order[self.position : end], self.survivors)

    def observe(self, scores: Scores) -> tuple[Race, Decision]:
        """The state after :meth:`next_round` was run: ``scores`` maps each of its variants
        to one value per block of the round (in the round's order): a block value in [0, 1]
        (:func:`block_value`), or None (or NaN) for a block with no score."""
        round_ = self.next_round()
        rows = np.array([self.variants.index(v) for v in round_.variants], dtype=np.intp)
        found = _matrix(scores, round_)
        end = self.position + len(round_.blocks)
        values = self.values.copy()
        values[rows, self.position : end] = found
        evidence = self.evidence.advance(rows, found, self.position, self.rules.min_cases)
        state = replace(self, position=end, rounds=round_.number, values=values, evidence=evidence)
        dropped = state._eliminations() if end >= self.rules.min_cases else ()
        gone = {e.variant for e in dropped}
        survivors = tuple(v for v in self.survivors if v not in gone)
        stop: StopReason | None = None
        if len(survivors) <= self.rules.keep:
            stop = "keep"
        elif end == self.n_blocks:
            stop = "exhausted"
        means = state.means
        decision = Decision(
            round_.number, end, dropped, survivors, state._ranked(survivors)[0],
            {v: means[v] for v in self.survivors}, stop,
        )  # fmt: skip
        return replace(
            state, survivors=survivors, decisions=(*self.decisions, decision), stopped=stop,
        ), decision  # fmt: skip

    def stop(self, reason: StopReason = "budget") -> Race:
        """The race stopped from outside (the budget ran out): survivors count as tied."""
        return replace(self, stopped=reason)

    @cached_property
    def means(self) -> dict[str, float | None]:
        """Each variant's mean block value so far (None: nothing scored)."""
        scored = ~np.isnan(self.values)
        totals = np.where(scored, self.values, 0.0).sum(axis=1)
        counts = scored.sum(axis=1)
        return {
            name: float(total / count) if count else None
            for name, total, count in zip(self.variants, totals, counts, strict=True)
        }

    def interval(self, a: str, b: str) -> tuple[float, float]:
        """The anytime-valid interval of ``mean(a) - mean(b)`` on their paired blocks so far
        (normalised units; each end at level ``1 - alpha / (K - 1)``). The lower end is the
        test's (above 0 once ``a`` is confidently better); it is -1 while ``a`` trails."""
        i, j = self.variants.index(a), self.variants.index(b)
        d = self.values[i, : self.position] - self.values[j, : self.position]
        present = ~np.isnan(d)
        counted = np.arange(1, self.position + 1)[present] >= self.rules.min_cases
        d, threshold = d[present], self.log_threshold
        return (
            lower_bound(d, decision_bets(d), counted, threshold),
            -lower_bound(-d, plug_in_bets(-d, threshold), counted, threshold),
        )

    def outcome(self) -> Outcome:
        """The result so far (final once :attr:`done`)."""
        means = self.means
        cases = dict(zip(self.variants, (~np.isnan(self.values)).sum(axis=1).tolist(), strict=True))
        standings: list[Standing] = []
        for rank, name in enumerate(self._ranked(self.survivors), start=1):
            status = self._survivor_status(rank)
            standings.append(Standing(name, rank, means[name], cases[name], self.position, status))
        for gone in sorted(
            self.eliminations, key=lambda e: (-e.blocks, -(e.mean if e.mean is not None else -1))
        ):
            standings.append(
                Standing(gone.variant, len(standings) + 1, means[gone.variant],
                         cases[gone.variant], gone.blocks, "dropped", gone)
            )  # fmt: skip
        winner = standings[0].variant if self.done else None
        return Outcome(
            self.stopped, winner, tuple(standings), self.eliminations, self.rounds,
            self.position, self.n_blocks,
        )  # fmt: skip

    @property
    def eliminations(self) -> tuple[Elimination, ...]:
        """Every elimination so far, in order."""
        return tuple(e for d in self.decisions for e in d.eliminated)

    # ------------------------------------------------------------------ internals

    def _survivor_status(self, rank: int) -> Literal["winner", "kept", "tied", "running"]:
        if self.stopped is None:
            return "running"
        if self.stopped == "keep":
            return "winner" if self.rules.keep == 1 else "kept"
        return "tied" if len(self.survivors) > 1 else "winner"

    def _ranked(self, names: Iterable[str]) -> list[str]:
        """``names`` by mean, highest first (unscored last; ties in variant order)."""
        means = self.means

        def key(name: str) -> tuple[float, int]:
            mean = means[name]
            return (-(mean if mean is not None else -1.0), self.variants.index(name))

        return sorted(names, key=key)

    def _eliminations(self) -> tuple[Elimination, ...]:
        """Survivors some other survivor is confidently better than, weakest first, while
        more than ``keep`` remain."""
        rows = [self.variants.index(v) for v in self.survivors]
        peak = self.evidence.peak[np.ix_(rows, rows)]
        beats = peak >= self.log_threshold
        np.fill_diagonal(beats, False)
        if not beats.any():
            return ()
        names = list(self.survivors)
        beaten = [names[j] for j in range(len(names)) if beats[:, j].any()]
        room = len(names) - self.rules.keep
        dropped = list(reversed(self._ranked(beaten)))[:room]
        out = []
        for name in dropped:
            j = names.index(name)
            rivals = [i for i in range(len(names)) if beats[i, j]]
            # Name a rival that survives this round if there is one, the strongest evidence first.
            best = max(rivals, key=lambda i: (names[i] not in dropped, peak[i, j]))
            out.append(self._elimination(name, names[best]))
        return tuple(out)

    def _elimination(self, name: str, rival: str) -> Elimination:
        a, b = self.variants.index(rival), self.variants.index(name)
        pairs = int(self.evidence.n[a, b])
        low, high = self.interval(rival, name)
        return Elimination(
            name, self.rounds, self.position, int((~np.isnan(self.values[b])).sum()),
            self.means[name], rival, pairs, float(self.evidence.s1[a, b] / max(pairs, 1)),
            low, high,
        )  # fmt: skip


def _matrix(scores: Scores, round_: Round) -> NDArray[np.float64]:
    """The round's scores as variants × blocks (NaN: None), checked."""
    if set(scores) != set(round_.variants):
        raise ValueError(f"scores for {sorted(scores)}, the round runs {list(round_.variants)}")
    for name in round_.variants:
        if len(scores[name]) != len(round_.blocks):
            raise ValueError(f"{name}: {len(scores[name])} values for {len(round_.blocks)} blocks")
    out = np.array([scores[v] for v in round_.variants], dtype=float)  # None becomes NaN
    if ((out < 0) | (out > 1)).any():  # NaN compares False: no score is fine
        raise ValueError(f"a block value is not in [0, 1]: {out[(out < 0) | (out > 1)][0]}")
    return out.reshape(len(round_.variants), len(round_.blocks))


def drive(race: Race, scores: Callable[[Round], Scores | None]) -> Race:
    """Run ``race`` until it stops, or until ``scores`` returns None for a round (its scores
    are not all in yet: a stored run replayed up to where it stopped)."""
    while not race.done:
        found = scores(race.next_round())
        if found is None:
            break
        race, _ = race.observe(found)
    return race
