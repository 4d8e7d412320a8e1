"""The statistics behind ``contrast`` and ``decide``: pure functions of numbers, no tables.

- :func:`signed_rank_p`: Wilcoxon's signed-rank test, exact (ties included) up to
  ``EXACT_UP_TO`` differences;
- :func:`sign_test_p`: the exact two-sided binomial test against 1/2 (McNemar's exact test);
- :func:`holm`: Holm's step-down adjustment over several comparisons;
- :func:`t_interval`: Student's t interval of a mean;
- :func:`wilson_interval`: Wilson's score interval of pass rates;
- :func:`pass_at_k`: the unbiased pass@k estimator (Chen et al. 2021);
- :func:`verdict`: a finding in words, the one wording every view uses.

Each is scipy's number (``tests/test_statistics.py`` checks them against ``scipy.stats`` on
random inputs), computed from ``scipy.special`` over whole arrays: importing ``scipy.stats``
takes 1.5-3 s (the report's whole budget), ``scipy.special`` a tenth of that, and one call of
``binomtest`` per level or pair costs more than the arrays. Only the signed-rank test, which
has no special-function form, imports ``scipy.stats``, when a numeric score or repeats need it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "EXACT_UP_TO", "holm", "number", "p_text", "pass_at_k", "sign_test_p", "signed_rank_p",
    "t_half", "t_interval", "verdict", "wilson_interval",
]  # fmt: skip


def verdict(
    a: Any,
    b: Any,
    *,
    kind: str,
    diff: float,
    pairs: int,
    informative: int,
    p: float,
    alpha: float,
    tests: int = 1,
    unshared: Sequence[str] = (),
) -> tuple[str, Any, str]:
    """``(outcome, winner, words)`` for the pair ``a``, ``b`` (``diff`` is ``b - a``; ``p``
    adjusted over ``tests`` comparisons). Outcomes: ``better`` (the winner beats the other:
    "B beats A: +12 points, p = 0.003"), ``no_difference``, ``too_few`` (no result could be
    significant with so few differing pairs), ``no_pairs``. Every view words a finding this
    way."""
    if pairs == 0:
        why = f" (they share no value of {', '.join(unshared)})" if unshared else ""
        return "no_pairs", None, f"no pairs: no cell was scored under both {a} and {b}{why}"
    need = next(m for m in itertools.count(1) if 2 * 0.5**m < alpha)
    if informative < need:
        return "too_few", None, (
            f"too few pairs to tell: {informative} of {pairs} pairs differ, and at least "
            f"{need} must differ before any result could reach p < {alpha:g}"
        )  # fmt: skip
    size = _difference(abs(diff), kind)
    adjusted = f", Holm-adjusted over {tests} comparisons" if tests > 1 else ""
    if p < alpha:
        winner, loser = (b, a) if diff > 0 else (a, b)
        return "better", winner, f"{winner} beats {loser}: +{size}, p = {p_text(p)}{adjusted}"
    sign = "-" if diff < 0 else "+"
    return "no_difference", None, (
        f"no detectable difference between {a} and {b}: {sign}{size}, p = {p_text(p)}{adjusted}"
    )  # fmt: skip


def pass_at_k(n: Any, c: Any, k: int) -> Any:
    """The chance that at least one of ``k`` samples drawn from ``n`` (``c`` of them passing)
    passes: ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021). Scalars or numpy arrays."""
    from scipy.special import comb

    if np.any(np.asarray(k) > np.asarray(n)):
        raise ValueError(f"k={k} is more than the {n} samples")
    out = 1.0 - comb(np.asarray(n) - np.asarray(c), k) / comb(n, k)
    return float(out) if np.ndim(out) == 0 else out


def t_interval(x: np.ndarray, confidence: float) -> tuple[float, float]:
    """Student's t interval of the mean of ``x`` (a point when all are equal; none for fewer
    than two values)."""
    if len(x) < 2:
        return np.nan, np.nan
    mean = float(x.mean())
    half = float(t_half(np.array([x.std(ddof=1)]), np.array([len(x)]), confidence)[0])
    return mean - half, mean + half


def t_half(sd: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """Half-widths of t intervals from standard deviations and counts (NaN below two)."""
    from scipy.special import stdtrit  # what scipy.stats.t.ppf computes

    enough = n >= 2
    half = np.full(len(n), np.nan)
    quantile = stdtrit(n[enough] - 1, 0.5 + confidence / 2)
    half[enough] = np.where(sd[enough] == 0, 0.0, quantile * sd[enough] / np.sqrt(n[enough]))
    return half


def wilson_interval(
    passed: np.ndarray, samples: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval of each pass rate ``passed / samples`` (NaN where there are no
    samples): ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")``
    for every level at once, scipy's formula (Newcombe 1998) in scipy's order of operations."""
    from scipy.special import ndtri

    k = np.asarray(passed, dtype=np.int64)
    n = np.asarray(samples, dtype=np.int64)
    z = ndtri(0.5 + 0.5 * confidence)
    z2 = z**2
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 2 * (n + z2)
        center = (2 * n * p + z2) / denom
        delta = z / denom * np.sqrt(4 * n * p * (1 - p) + z2)
        low = np.where(k == 0, 0.0, center - delta)
        high = np.where(k == n, 1.0, center + delta)
    empty = n == 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


#: Above this many trials :func:`sign_test_p` asks ``scipy.stats.binomtest`` (see there).
SIGN_TEST_UP_TO = 10_000_000


def sign_test_p(successes: Any, trials: Any) -> Any:
    """The two-sided p-value of the exact binomial test of ``successes`` in ``trials``
    against a rate of 1/2 (McNemar's exact test, on the pairs that differ): what
    ``scipy.stats.binomtest(k, n).pvalue`` returns, for scalars or arrays (1 where n is 0).

    At 1/2 the distribution is symmetric, so the other tail scipy's search finds is the
    mirror of the count's: with ``low`` the smaller of k and n - k, the p-value is
    P(X <= low) + P(X >= n - low), both tails the same regularised incomplete beta function
    boost computes for scipy's binomial (``betainc(n - low, low + 1, 1/2)``); a count within
    one of n/2 has both tails cover everything: 1. scipy also counts into the other tail the
    terms within a relative 1e-7 of the count's, which only happens above 2e7 trials: from
    ``SIGN_TEST_UP_TO`` on, scipy computes it.
    """
    from scipy.special import betainc

    k, n = np.broadcast_arrays(np.asarray(successes, np.int64), np.asarray(trials, np.int64))
    low = np.minimum(k, n - k)
    tail = betainc(n - low, low + 1, 0.5)
    p = np.where(np.abs(n - 2 * k) <= 1, 1.0, np.minimum(1.0, tail + tail))
    if (n > SIGN_TEST_UP_TO).any():
        from scipy import stats

        flat = np.array(p, dtype=float).ravel()
        for i in np.flatnonzero(n.ravel() > SIGN_TEST_UP_TO):
            flat[i] = stats.binomtest(int(k.ravel()[i]), int(n.ravel()[i])).pvalue
        p = flat.reshape(n.shape)
    return float(p) if np.ndim(p) == 0 else p


#: Up to this many non-zero differences the signed-rank test is exact.
EXACT_UP_TO = 50


def signed_rank_p(d: np.ndarray) -> float:
    """The two-sided p-value of Wilcoxon's signed-rank test of the differences ``d`` (zeros
    dropped, ties given their mean rank).

    Up to ``EXACT_UP_TO`` differences it is exact: the statistic's distribution over every
    sign flip, counted by convolution over the (doubled, so whole) ranks. scipy computes the
    same by enumerating the flips when ranks are tied, up to 13 of them — 8,192 statistics,
    about a second a pair; beyond, and always above ``EXACT_UP_TO``, it uses the normal
    approximation, as here (``tests/test_contrast.py`` checks both against scipy).
    """
    from scipy import stats

    d = d[d != 0]
    if len(d) > EXACT_UP_TO:
        return float(stats.wilcoxon(d, method="asymptotic").pvalue)
    doubled = np.rint(2 * stats.rankdata(np.abs(d))).astype(np.int64)
    ways = np.zeros(int(doubled.sum()) + 1)
    ways[0] = 1.0
    for rank in doubled:  # each difference adds its rank to the sum, or not
        ways[rank:] = ways[rank:] + ways[:-rank].copy()
    ways /= ways.sum()
    above = int(doubled[d > 0].sum())
    return float(min(1.0, 2 * min(ways[: above + 1].sum(), ways[above:].sum())))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of the p-values ``p`` (NaN: no test, left as it is): the
    i-th smallest of m is multiplied by ``m - i``, then made non-decreasing, capped at 1."""
    out = np.array(p, dtype=float)
    tested = np.flatnonzero(~np.isnan(out))
    order = tested[np.argsort(out[tested], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * out[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled)) if m else scaled
    return out


# ---------------------------------------------------------------------------- wording


def _difference(size: float, kind: str) -> str:
    """A difference as the verdict words it: points for a pass rate."""
    return f"{number(size * 100)} points" if kind == "bool" else number(size)


def number(value: Any, sign: bool = False) -> str:
    """A number as the reports print it: three significant digits, ``-`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.3g}" if sign else f"{value:.3g}"


def p_text(p: float) -> str:
    """A p-value as the reports print it: two significant digits, ``1`` for 1."""
    return "1" if p >= 1 else f"{p:.2g}"
