"""The statistics contrast and decide use, from scipy.special over arrays: scipy.stats' numbers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from promptgrid.analysis import statistics
from promptgrid.analysis.statistics import sign_test_p, t_half, wilson_interval

#: (passes, samples): counts of every size, the extremes (0 or all passing) often.
counts = st.integers(1, 1_000_000).flatmap(
    lambda n: st.tuples(st.one_of(st.integers(0, n), st.sampled_from([0, 1, n - 1, n])), st.just(n))
)


@settings(max_examples=60, deadline=None)
@given(st.lists(counts, min_size=1, max_size=20), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_intervals_are_scipys(found: list[tuple[int, int]], confidence: float) -> None:
    k, n = np.array(found).T
    low, high = wilson_interval(k, n, confidence)
    for i, (passed, samples) in enumerate(found):
        ci = stats.binomtest(passed, samples).proportion_ci(confidence, method="wilson")
        assert low[i] == pytest.approx(ci.low, rel=1e-12, abs=1e-15)
        assert high[i] == pytest.approx(ci.high, rel=1e-12, abs=1e-15)


def test_a_level_without_samples_has_no_interval() -> None:
    low, high = wilson_interval(np.array([0, 3]), np.array([0, 4]), 0.95)
    assert np.isnan(low[0]) and np.isnan(high[0]) and 0 < low[1] < 0.75 < high[1] < 1


@settings(max_examples=200, deadline=None)
@given(st.one_of(counts, st.integers(1, 3000).flatmap(lambda n: st.tuples(
    st.integers(0, n), st.just(n)))))  # fmt: skip
def test_the_sign_test_is_scipys_binomial_test(found: tuple[int, int]) -> None:
    k, n = found
    expected = stats.binomtest(k, n).pvalue
    # Tiny p-values too: scipy's tails underflow to 0 where boost's incomplete beta does.
    assert sign_test_p(k, n) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_the_sign_test_takes_arrays_and_is_one_without_trials() -> None:
    k, n = np.array([[7, 1], [0, 0]]), np.array([[8, 8], [5, 0]])
    expected = [[stats.binomtest(7, 8).pvalue, stats.binomtest(1, 8).pvalue],
                [stats.binomtest(0, 5).pvalue, 1.0]]  # fmt: skip
    assert sign_test_p(k, n) == pytest.approx(np.array(expected), rel=1e-12)
    assert sign_test_p(7, 8) == pytest.approx(18 / 256)  # 2 (1 + 8) / 2^8, by hand


def test_above_ten_million_trials_scipy_decides_the_tail_it_counts() -> None:
    # (k+1)/(n-k) within 1e-7 of 1: scipy counts the mirror's neighbour into the other tail
    # (its p is 1 here); the symmetric formula alone would not.
    k, n = 10**7, 2 * 10**7 + 2
    assert n > statistics.SIGN_TEST_UP_TO
    assert sign_test_p(k, n) == stats.binomtest(k, n).pvalue == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e6), st.integers(0, 100_000)), min_size=1, max_size=20),
       st.sampled_from([0.8, 0.95, 0.99]))  # fmt: skip
def test_t_half_widths_are_scipys(found: list[tuple[float, int]], confidence: float) -> None:
    sd, n = (np.array(v) for v in zip(*found, strict=True))
    half = t_half(sd, n, confidence)
    for i, (s, m) in enumerate(found):
        if m < 2:
            assert np.isnan(half[i])
        else:
            expected = 0.0 if s == 0 else stats.t.ppf(0.5 + confidence / 2, m - 1) * s / np.sqrt(m)
            assert half[i] == pytest.approx(expected, rel=1e-12, abs=1e-300)
