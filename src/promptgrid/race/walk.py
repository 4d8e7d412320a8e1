"""A race run by the engine: the grid walked round by round (racing is a way of walking the
cells, not a second engine).

For each round of the core (:meth:`Race.next_round`): the cells of every surviving variant on
the round's blocks, repeats included (:class:`~.layout.Layout`), that have no row yet go to
``send`` — the run's scheduler, with its cache, de-duplication, limits and budget, none of
which knows it is in a race; then ``score`` computes the scores the new rows lack (judges'
calls included); then the race's score is read back from the store, normalised to [0, 1]
(:class:`Scale`), averaged per block, and handed to the core, which decides who survives. The
round's record (:mod:`promptgrid.store.races`) is committed before the next round starts.

**Resume.** A race's decisions depend only on its settings and its rows' scores (``core``),
so a resumed run (or a retried one) first scores whatever its rows lack, then replays every
round whose cells all have rows — no call — and writes their record again; the first round
that is not complete is run live, sending only its cells without a row. A kill at any moment
thus costs at most the calls in flight, and the race reaches the decisions it would have
reached uninterrupted. (If ``scores:`` were edited in between, the replay follows the new
scores, and so does the record.)

**Stops.** The core stops the race when ``keep`` variants survive or the blocks run out. The
budget stops it from outside: the round's rows so far are scored and the race is recorded as
stopped by the budget, its survivors tied (a resume with a higher cap continues it). A signal,
or an authentication or quota failure, leaves it where it was, for a resume.

**Scores outside their bounds.** The guarantee needs scores within the race's bounds; a value
outside them (a python scorer's number beyond ``bounds``) is left out of the race as if the
row had no score, and the run warns once, with the first such value and what to do.

Batch mode does not race: a race waits for each round's scores before it chooses the next
round's cells, and a batch answers within 24 hours, so a race of twenty rounds could take
weeks (``options.refuse_batches``).
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass, field

import numpy as np

from ..engine.storeio import StoreIO
from ..errors import PromptgridWarning
from ..spec import Experiment
from ..spec.schema import RaceSpec
from ..store import Store
from ..store import races as book
from .core import Decision, Race, Round, Rules, Scale, block_value
from .layout import Indexes, Layout

__all__ = ["Score", "Send", "walk"]

#: Runs the cells it is given through the scheduler: None when every one has its row, else
#: why it stopped: ``budget``, or ``stopped`` (a signal, an authentication or quota failure).
Send = Callable[[frozenset[int]], Awaitable[str | None]]
#: Computes the scores (and judges' calls) the run's rows lack (``missing``) or also redoes
#: those that failed (``errors``): None when all are done, else why it stopped.
Score = Callable[[str], Awaitable[str | None]]


async def walk(
    io: StoreIO,
    run_id: str,
    experiment: Experiment,
    skip: Set[int],
    send: Send,
    score: Score,
    redo: str = "missing",
) -> Race:
    """Race ``experiment`` (its ``race:``) in run ``run_id``; ``skip`` holds the cells whose
    rows stand (a resume: all that have one; a retry: the ok ones); ``redo`` is the first
    scoring's (a retry redoes failed scores). Returns the race as it stands (see the module
    docstring for when it stops)."""
    state = _Walk.start(io, run_id, experiment)
    await io.call(state.begin)
    state.have = set(await io.call(Store.indexes, run_id, None))
    race = state.first()
    if state.have:
        why = await score(redo)
        if why is not None:
            return await state.stopped(race, why, score)
        race = await state.replay(race, skip)
        redo = "missing"
    done = set(skip)
    while not race.done:
        round_ = race.next_round()
        cells = state.layout.cells(state.positions(round_), round_.blocks)
        todo = frozenset(int(c) for c in cells.ravel() if int(c) not in done)
        if todo:
            why = await send(todo)
            state.have |= todo
            why = why or await score(redo)
            redo = "missing"
            if why is not None:
                return await state.stopped(race, why, score)
            done |= todo
        race, decision = race.observe(await state.values(round_, cells))
        await io.call(book.record, run_id, state.state(race), *state.round_record(race, decision))
    state.warn()
    return race


@dataclass
class _Walk:
    """What the walk knows besides the race: where blocks sit, the score's scale, the rows."""

    io: StoreIO
    run_id: str
    experiment: Experiment
    layout: Layout
    scale: Scale
    have: set[int] = field(default_factory=set)  #: cells with a result row
    outside: int = 0  #: score values outside the bounds, left out
    first_outside: tuple[int, float] | None = None

    @classmethod
    def start(cls, io: StoreIO, run_id: str, experiment: Experiment) -> _Walk:
        spec = experiment.file.race
        assert spec is not None
        layout = Layout.of(experiment, spec.factor)
        return cls(io, run_id, experiment, layout, Scale(*experiment.race_bounds))

    @property
    def spec(self) -> RaceSpec:
        race = self.experiment.file.race
        assert race is not None
        return race

    def first(self) -> Race:
        """The race at its start."""
        spec = self.spec
        rules = Rules(spec.confidence, spec.min_cases, spec.keep, spec.seed)
        return Race.start(self.layout.variants, self.layout.n_blocks, rules)

    def begin(self, store: Store) -> None:
        """Record the race's settings (on the store's thread)."""
        book.begin(
            store, self.run_id, settings=self.spec.model_dump(mode="json", exclude_none=True),
            variants=self.layout.variants, n_blocks=self.layout.n_blocks,
            repeats=self.layout.repeats, bounds=(self.scale.low, self.scale.high),
        )  # fmt: skip

    def positions(self, round_: Round) -> list[int]:
        return [self.layout.variants.index(v) for v in round_.variants]

    async def replay(self, race: Race, skip: Set[int]) -> Race:
        """Observe every round whose cells all have standing rows, from the stored scores;
        write their record again."""
        rows: list[book.RoundRow] = []
        drops: list[book.Drop] = []
        while not race.done:
            round_ = race.next_round()
            cells = self.layout.cells(self.positions(round_), round_.blocks)
            if not all(int(c) in skip for c in cells.ravel()):
                break
            race, decision = race.observe(await self.values(round_, cells))
            more_rows, more_drops = self.round_record(race, decision)
            rows += more_rows
            drops += more_drops
        await self.io.call(book.rewrite, self.run_id, self.state(race), rows, drops)
        return race

    async def stopped(self, race: Race, why: str, score: Score) -> Race:
        """The run stopped mid-round: by the budget, the race stops (recorded so, after the
        round's rows so far are scored); otherwise it stays where it was."""
        if why == "budget":
            await score("missing")
            race = race.stop("budget")
            self.have = set(await self.io.call(Store.indexes, self.run_id, None))
            await self.io.call(book.record, self.run_id, self.state(race), [], [])
        self.warn()
        return race

    async def values(self, round_: Round, cells: Indexes) -> dict[str, list[float | None]]:
        """The round's block values, variant by variant (None: nothing scored)."""
        flat = [int(c) for c in cells.ravel()]
        found = await self.io.call(book.score_values, self.run_id, self.spec.score, flat)
        samples = [self._normalised(idx, found.get(idx)) for idx in flat]
        shape = cells.shape
        out: dict[str, list[float | None]] = {}
        for i, variant in enumerate(round_.variants):
            start = i * shape[1] * shape[2]
            out[variant] = [
                block_value(samples[start + b * shape[2] : start + (b + 1) * shape[2]])
                for b in range(shape[1])
            ]
        return out

    def _normalised(self, idx: int, value: float | None) -> float | None:
        if value is None:
            return None
        try:
            return self.scale.normalise(value)
        except ValueError:
            self.outside += 1
            self.first_outside = self.first_outside or (idx, value)
            return None

    def state(self, race: Race) -> book.RaceState:
        """The race's standing, in the score's units, with each variant's calls."""
        outcome = race.outcome()
        rows = np.fromiter(self.have, dtype=np.int64, count=len(self.have))
        calls = np.bincount(self.layout.variant_of(rows), minlength=len(self.layout.variants))
        places = tuple(
            book.Place(s.variant, s.rank, s.status, self._units(s.mean), s.cases, s.blocks,
                       int(calls[self.layout.variants.index(s.variant)]))
            for s in outcome.standings
        )  # fmt: skip
        return book.RaceState(race.rounds, race.position, race.stopped, outcome.winner, places)

    def round_record(
        self, race: Race, decision: Decision
    ) -> tuple[list[book.RoundRow], list[book.Drop]]:
        """One round's rows (every variant that ran in it) and eliminations, in score units."""
        span = self.scale.high - self.scale.low
        cases = {s.variant: s.cases for s in race.outcome().standings}
        gone = {e.variant for e in decision.eliminated}
        leader = decision.leader
        rows = []
        for variant in decision.means:  # the variants that ran in the round
            lead = low = high = None
            if variant != leader:
                a, b = race.variants.index(leader), race.variants.index(variant)
                pairs = int(race.evidence.n[a, b])
                lead = float(race.evidence.s1[a, b]) / pairs * span if pairs else None
                low, high = (x * span for x in race.interval(leader, variant))
            rows.append(book.RoundRow(
                decision.round, variant, decision.blocks, cases[variant],
                self._units(race.means[variant]), leader, lead, low, high, variant in gone,
            ))  # fmt: skip
        drops = [
            book.Drop(e.variant, e.round, e.blocks, e.cases, self._units(e.mean), e.against,
                      e.pairs, e.estimate * span, e.low * span, e.high * span)
            for e in decision.eliminated
        ]  # fmt: skip
        return rows, drops

    def _units(self, mean: float | None) -> float | None:
        """A normalised mean in the score's units."""
        return None if mean is None else self.scale.low + mean * (self.scale.high - self.scale.low)

    def warn(self) -> None:
        """One warning for the score values the race left out."""
        if not self.outside or self.first_outside is None:
            return
        idx, value = self.first_outside
        spec = self.spec
        warnings.warn(
            f"{self.outside:,} value(s) of score {spec.score!r} were outside the race's bounds "
            f"[{self.scale.low:g}, {self.scale.high:g}] (the first: {value!r}, cell {idx}) and "
            "were left out of the race, as if unscored: give race.bounds that hold every "
            "value the scorer returns",
            PromptgridWarning,
            stacklevel=2,
        )
