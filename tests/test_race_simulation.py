"""Proof by simulation: over 1,000 races on synthetic Bernoulli variants, the true best is
dropped at most ``1 - confidence`` of the time, the all-tied case included.

Pure arithmetic (no API, no store): each race draws a fresh table of pass/fail scores and
drives the real core over it. The seeds are fixed, so the counts are the same on every run;
the margin is the statistical one: a rate is accepted unless a one-sided binomial test says it
is above ``alpha`` at the 0.001 level (3 standard errors, about +0.04 at alpha = 0.2 over
1,000 races). The rates are printed (``pytest -s``) and reported in benchmarks/README.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from scipy.stats import binomtest

from promptgrid.race import Race, Round, Rules, drive

RACES = 1_000

# Each proof drives the real core through 1,000 races (tens of CPU seconds): the full suite and
# CI run them, the fast inner loop (-m "not slow") leaves them out.
pytestmark = pytest.mark.slow


def simulate(rates: Sequence[float], blocks: int, rules: Rules) -> tuple[np.ndarray, int]:
    """How often each variant was dropped, and in how many races anything was, over ``RACES``
    races (race ``i``: data seed ``i``, block-order seed ``i``)."""
    names = [f"v{i}" for i in range(len(rates))]
    row = {name: i for i, name in enumerate(names)}
    dropped, any_dropped = np.zeros(len(rates), dtype=int), 0
    for seed in range(RACES):
        rng = np.random.default_rng(seed)
        data = (rng.random((len(rates), blocks)) < np.asarray(rates)[:, None]).astype(float)

        def scores(r: Round, data: np.ndarray = data) -> dict[str, list[float | None]]:
            # One fancy-indexing step for the whole round (this loop runs ~20,000 times).
            table = data[np.ix_([row[v] for v in r.variants], list(r.blocks))].tolist()
            return dict(zip(r.variants, table, strict=True))

        race = drive(Race.start(names, blocks, Rules(rules.confidence, rules.min_cases,
                                                     rules.keep, seed)), scores)  # fmt: skip
        gone = [row[e.variant] for e in race.eliminations]
        dropped[gone] += 1
        any_dropped += bool(gone)
    return dropped, any_dropped


def at_most(count: int, alpha: float, trials: int = RACES) -> bool:
    """``count`` drops in ``trials`` are consistent with a rate of at most ``alpha``."""
    return bool(binomtest(count, trials, alpha, alternative="greater").pvalue >= 0.001)


def test_the_true_best_is_dropped_at_most_alpha_of_the_time() -> None:
    # A close race: the best leads the next by 0.05. Confidence 0.8 makes alpha large enough
    # for the count to say something (at 0.95 the best is almost never dropped).
    alpha = 0.2
    dropped, _ = simulate([0.6, 0.55, 0.5, 0.4], 200, Rules(confidence=1 - alpha, min_cases=20))
    print(f"\nbest dropped in {dropped[0]} of {RACES} races ({dropped[0] / RACES:.1%}); "
          f"alpha {alpha:.0%}; others: {(dropped[1:] / RACES).round(3).tolist()}")  # fmt: skip
    assert at_most(int(dropped[0]), alpha), dropped
    assert dropped[3] > 0.9 * RACES  # the race does drop what is clearly worse


def test_when_all_are_tied_each_is_dropped_at_most_alpha_of_the_time() -> None:
    # All tied: every variant is a true best, so the guarantee is about each of them: each
    # survives with probability at least 1 - alpha. It is not a promise that nothing is ever
    # dropped (that would need a correction over all K (K - 1) ordered pairs, and cost power in
    # every race): whichever survives is as good as any, so no drop costs quality.
    # This is the least favourable case (every test's null is on its boundary), and with eight
    # variants it is sharp: without the correction over the K - 1 pairs each variant was
    # dropped in 25-30 % of races, above alpha (with it: 4.6-6.0 %; some variant in 29 %).
    alpha, k = 0.2, 8
    dropped, any_dropped = simulate([0.5] * k, 200, Rules(confidence=1 - alpha, min_cases=20))
    print(f"\nall tied: each dropped in {(dropped / RACES).round(3).tolist()} of races; "
          f"some variant dropped in {any_dropped / RACES:.1%}; alpha {alpha:.0%}")  # fmt: skip
    for count in dropped:
        assert at_most(int(count), alpha), dropped
    assert at_most(int(dropped.sum()), alpha, RACES * k)  # pooled: the mean rate, more precisely
