"""The race's core: hand-worked wealth and bounds, rounds, eliminations, stops, replay."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pytest

from promptgrid.race import Race, Round, Rules, Scale, block_order, block_value, drive
from promptgrid.race.evidence import decision_bets, lower_bound, plug_in_bets


def fixed(table: Mapping[str, Sequence[float | None]]) -> Callable[[Round], dict]:
    """Scores for each round from per-block values (indexed by block id)."""
    return lambda r: {v: [table[v][b] for b in r.blocks] for v in r.variants}


def bernoulli(rates: Sequence[float], n: int, seed: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    data = rng.random((len(rates), n)) < np.asarray(rates)[:, None]
    return {f"v{i}": row.astype(float).tolist() for i, row in enumerate(data)}


# ----------------------------------------------------------------- the test, by hand


def test_a_variant_that_always_wins_rejects_at_the_hand_computed_block() -> None:
    # d = 1 every block: bets 0 (no past), then 1/2, 2/3 -> capped 1/2, ...: wealth 1.5^(t-1).
    # With K = 2 and alpha = 0.05 the threshold is 20: 1.5^(t-1) >= 20 first at t = 9.
    race = Race.start(["a", "b"], 30, Rules(confidence=0.95, min_cases=1))
    assert race.log_threshold == pytest.approx(math.log(20))
    race = drive(race, fixed({"a": [1.0] * 30, "b": [0.0] * 30}))
    (gone,) = race.eliminations
    assert (gone.variant, gone.against, gone.blocks, gone.pairs) == ("b", "a", 9, 9)
    assert gone.estimate == 1.0
    # Its lower bound: (1 + (1 - m) / 2)^8 = 20, so m = 1 - 2 (20^(1/8) - 1).
    assert gone.low == pytest.approx(1 - 2 * (20 ** (1 / 8) - 1), abs=1e-4)
    assert gone.high == pytest.approx(1.0)
    assert race.stopped == "keep" and race.outcome().winner == "a"


def test_the_threshold_is_corrected_over_the_k_minus_1_pairs_that_can_drop_the_best() -> None:
    race = Race.start([f"v{i}" for i in range(20)], 500, Rules(confidence=0.95))
    assert race.log_threshold == pytest.approx(math.log(19 / 0.05))


def test_bets_use_only_the_past_and_stay_within_the_cap() -> None:
    d = np.array([1.0, -1.0, 1.0, 1.0, 0.0])
    # past sums (s1, s2): (0,0) (1,1) (0,2) (1,3) (2,4) -> 0, 1/2, 0, 1/4, 2/5
    assert decision_bets(d) == pytest.approx([0.0, 0.5, 0.0, 0.25, 0.4])
    lam = plug_in_bets(np.array([0.5] * 50), math.log(20))
    assert (lam > 0).all() and (lam <= 0.5).all()


def test_the_lower_bound_is_above_zero_exactly_when_the_wealth_at_zero_crossed() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        d = rng.choice([-1.0, 0.0, 1.0], size=80, p=[0.2, 0.4, 0.4])
        lam = decision_bets(d)
        counted = np.ones(80, bool)
        crossed = np.cumsum(np.log1p(lam * d)).max() >= math.log(20)
        assert (lower_bound(d, lam, counted, math.log(20)) > 0) == crossed


# ----------------------------------------------------------------- rounds and values


def test_rounds_start_with_min_cases_then_grow_by_a_tenth_at_least_half_of_it() -> None:
    race = Race.start(["a", "b", "c"], 300, Rules(min_cases=20, seed=1))
    sizes, seen = [], []
    while not race.done:
        r = race.next_round()
        sizes.append(len(r.blocks))
        seen.extend(r.blocks)
        race, _ = race.observe({v: [0.5] * len(r.blocks) for v in r.variants})
    assert sizes[:3] == [20, 10, 10] and sizes[9:13] == [10, 11, 13, 14]
    assert sum(sizes) == 300 and sizes[-1] == 300 - sum(sizes[:-1])
    assert tuple(seen) == race.order  # each block once, in the seeded order
    assert race.stopped == "exhausted" and race.outcome().tied == ("a", "b", "c")


def test_the_block_order_is_a_seeded_permutation_stable_across_versions() -> None:
    assert sorted(block_order(50, 0)) == list(range(50))
    assert block_order(50, 0) == block_order(50, 0) != block_order(50, 1)
    # Pinned: a resumed race must see its blocks in the same order on any Python or numpy.
    assert block_order(8, 0) == (1, 3, 6, 4, 5, 7, 0, 2)


def test_block_values_are_means_of_scored_samples_normalised() -> None:
    judge = Scale(1, 5)
    assert [judge.normalise(v) for v in (1, 3, 5)] == [0.0, 0.5, 1.0]
    assert block_value([1.0, None, 0.0, float("nan"), 1.0]) == pytest.approx(2 / 3)
    assert block_value([None, None]) is None
    for bad in (6, float("nan"), float("inf"), -0.5):
        with pytest.raises(ValueError, match="outside"):
            judge.normalise(bad)


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        pytest.param({"a": [0.5] * 20}, "the round runs", id="missing-variant"),
        pytest.param({"a": [0.5] * 19, "b": [0.5] * 20}, "19 values for 20", id="short"),
        pytest.param({"a": [1.5] + [0.5] * 19, "b": [0.5] * 20}, "not in", id="out-of-range"),
        pytest.param({"a": [float("inf")] * 20, "b": [0.5] * 20}, "not in", id="infinite"),
    ],
)
def test_observe_refuses_scores_that_do_not_fit_the_round(scores: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Race.start(["a", "b"], 40).observe(scores)


@pytest.mark.parametrize(
    ("variants", "blocks", "rules"),
    [
        pytest.param(["a"], 10, Rules(), id="one-variant"),
        pytest.param(["a", "a"], 10, Rules(), id="duplicates"),
        pytest.param(["a", "b"], 10, Rules(keep=2), id="keep-all"),
        pytest.param(["a", "b"], 0, Rules(), id="no-blocks"),
    ],
)
def test_a_race_needs_something_to_race(variants: list, blocks: int, rules: Rules) -> None:
    with pytest.raises(ValueError):
        Race.start(variants, blocks, rules)


@pytest.mark.parametrize("bad", [{"confidence": 1.0}, {"confidence": 0}, {"keep": 0},
                                 {"min_cases": 0}])  # fmt: skip
def test_rules_are_checked(bad: dict) -> None:
    with pytest.raises(ValueError):
        Rules(**bad)


# ----------------------------------------------------------------- eliminations and stops


def test_clearly_worse_variants_go_weakest_first_and_the_best_wins() -> None:
    scores = bernoulli([0.9, 0.5, 0.1], 300, seed=0)
    race = drive(Race.start(list(scores), 300, Rules(min_cases=20)), fixed(scores))
    assert [e.variant for e in race.eliminations] == ["v2", "v1"]
    assert race.eliminations[0].blocks <= race.eliminations[1].blocks
    for e in race.eliminations:
        assert e.against == "v0" and e.low > -1e-6 and e.low <= e.estimate <= e.high
        assert e.blocks >= 20 and e.cases == e.blocks
    outcome = race.outcome()
    assert outcome.reason == "keep" and outcome.winner == "v0"
    assert [s.status for s in outcome.standings] == ["winner", "dropped", "dropped"]
    assert outcome.runs == outcome.blocks + sum(e.blocks for e in race.eliminations)
    assert outcome.runs < outcome.grid_runs


def test_nothing_is_dropped_before_min_cases() -> None:
    scores = {"a": [1.0] * 60, "b": [0.0] * 60}
    race = drive(Race.start(["a", "b"], 60, Rules(min_cases=40)), fixed(scores))
    assert race.eliminations[0].blocks == 40 and race.decisions[0].blocks == 40


def test_keep_stops_with_that_many_and_never_drops_below_it() -> None:
    scores = {"a": [1.0] * 100, "b": [0.0] * 100, "c": [0.0] * 100, "d": [0.0] * 100}
    race = drive(Race.start(list(scores), 100, Rules(min_cases=20, keep=2)), fixed(scores))
    # b, c and d are all beaten in the first round: only two of them may go.
    assert race.stopped == "keep" and len(race.survivors) == 2 and race.rounds == 1
    assert [s.status for s in race.outcome().standings[:2]] == ["kept", "kept"]


def test_missing_scores_skip_the_block_for_the_pairs_concerned() -> None:
    a = [1.0] * 60
    b: list[float | None] = [0.0 if i % 2 else None for i in range(60)]
    race = drive(Race.start(["a", "b"], 60, Rules(min_cases=10)), fixed({"a": a, "b": b}))
    (gone,) = race.eliminations
    assert gone.pairs == gone.cases < gone.blocks  # only blocks b answered were paired
    assert race.means["b"] == 0.0 and race.means["a"] == 1.0


def test_a_variant_with_no_score_at_all_is_never_judged() -> None:
    scores = {"a": [1.0] * 50, "b": [None] * 50, "c": [0.0] * 50}
    race = drive(Race.start(list(scores), 50, Rules(min_cases=10, keep=1)), fixed(scores))
    assert [e.variant for e in race.eliminations] == ["c"]
    assert race.stopped == "exhausted" and race.outcome().tied == ("a", "b")


def test_a_budget_stop_reports_the_survivors_as_tied() -> None:
    scores = bernoulli([0.6, 0.55, 0.5], 400, seed=2)
    race = Race.start(list(scores), 400, Rules(min_cases=20))
    race, _ = race.observe(fixed(scores)(race.next_round()))
    stopped = race.stop("budget")
    outcome = stopped.outcome()
    assert outcome.reason == "budget" and outcome.winner == outcome.standings[0].variant
    assert {s.status for s in outcome.standings} == {"tied"}
    with pytest.raises(RuntimeError, match="budget"):
        stopped.next_round()


def test_observe_leaves_the_state_it_was_given_unchanged() -> None:
    scores = bernoulli([0.9, 0.1], 100, seed=1)
    race = Race.start(list(scores), 100, Rules(min_cases=20))
    before = race.values.copy()
    after, decision = race.observe(fixed(scores)(race.next_round()))
    assert np.array_equal(race.values, before, equal_nan=True) and race.position == 0
    assert after.position == 20 and decision.round == 1 and decision.leader == "v0"


# ----------------------------------------------------------------- replay and resume


def test_a_race_replayed_from_stored_scores_reaches_the_same_decisions() -> None:
    scores = bernoulli([0.7, 0.6, 0.5, 0.3, 0.2], 300, seed=5)
    rules = Rules(min_cases=15, seed=7)
    whole = drive(Race.start(list(scores), 300, rules), fixed(scores))
    # Stopped after three rounds (killed mid-race), then resumed from the same scores.
    rounds = iter(range(3))

    def first_three(r: Round) -> dict | None:
        return fixed(scores)(r) if next(rounds, None) is not None else None

    partial = drive(Race.start(list(scores), 300, rules), first_three)
    assert partial.rounds == 3 and not partial.done
    resumed = drive(partial, fixed(scores))
    replayed = drive(Race.start(list(scores), 300, rules), fixed(scores))
    for other in (resumed, replayed):
        assert other.decisions == whole.decisions
        assert other.outcome() == whole.outcome()
