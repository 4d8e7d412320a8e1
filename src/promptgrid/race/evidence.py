"""Anytime-valid evidence that one variant scores higher than another: testing by betting.

For an ordered pair ``(a, b)`` of variants, each block both answered gives a paired difference
``D = x_a - x_b`` in ``[-1, 1]`` (scores normalised to ``[0, 1]``). A gambler who stakes a
fraction ``λ_t`` of her wealth on "``a`` scores higher" holds, after ``t`` such blocks,

    W_t(m) = Π_{s ≤ t} (1 + λ_s (D_s - m)),     λ_s in [0, 1/2], chosen from D_1 .. D_{s-1} only.

If the blocks are independent draws and ``E[D] ≤ m`` (``a`` is no better than ``b`` by more
than ``m``), every factor has conditional mean ``1 + λ_s (E[D] - m) ≤ 1``: ``W(m)`` is a
nonnegative supermartingale starting at 1, and Ville's inequality bounds the chance that it
*ever* reaches ``1 / a`` by ``a``, however long one watches and whenever one stops. This is the
betting construction of Waudby-Smith & Ramdas, "Estimating means of bounded random variables
by betting" (JRSS-B 2024); it is valid at any data-dependent stopping time because the bound
holds for the supremum over all times, not for one fixed sample size. Two uses:

- the test: ``a`` is confidently better than ``b`` once ``W(0)`` has reached ``1 / a``;
- the interval: the lower end of an anytime-valid confidence sequence for ``E[D]`` is the
  smallest ``m`` whose wealth has never reached ``1 / a`` (``W(m)`` only falls as ``m`` grows
  when the bets do not depend on ``m``, so the set is an interval, found with
  ``scipy.optimize.brentq``). With the test's own bets, the lower end is above 0 exactly when
  the test has rejected. The upper end is the lower end for ``-D``, staked with the paper's
  predictable plug-in bets (the test's bets on ``-D`` are 0 once ``a`` leads, which would
  leave it at 1); each end holds at level ``1 - a`` on its own.

The bet is the approximate growth-rate-adaptive (aGRAPA) bet of that paper taken at the null
``m = 0``: ``λ = mean(D) / mean(D²)``, Kelly's bet to second order, computed from the pair's past
differences with one pseudo-observation ``D² = 1`` (so the first bets are small), truncated to
``[0, 1/2]``. The bound ``1/2`` keeps every factor nonnegative for every ``m`` in ``[-1, 1]``,
so the same bets serve the test and the interval.

Everything here is arithmetic on arrays (numpy): no state of its own, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CAP",
    "PRIOR",
    "PairEvidence",
    "bets",
    "decision_bets",
    "lower_bound",
    "plug_in_bets",
]  # fmt: skip

Floats = NDArray[np.float64]

#: The largest fraction of wealth staked: keeps ``1 + λ (D - m) ≥ 0`` for all ``D, m`` in [-1, 1].
CAP = 0.5
#: The pseudo-observation of ``D²`` in the bet's denominator: small first bets.
PRIOR = 1.0


def bets(s1: Floats, s2: Floats) -> Floats:
    """The bets for differences whose past sums are ``s1`` (of D) and ``s2`` (of D²)."""
    return np.minimum(np.maximum(s1 / (PRIOR + s2), 0.0), CAP)  # np.clip is slower


@dataclass(frozen=True, eq=False)
class PairEvidence:
    """Running evidence for every ordered pair of ``k`` variants (``k × k`` arrays; entry
    ``[a, b]`` is about "``a`` scores higher than ``b``"): paired blocks ``n``, sums of the
    differences ``s1`` and of their squares ``s2``, the log-wealth ``log_w`` of the test at
    ``m = 0``, and ``peak``, its highest value after a paired block at position ``min_cases``
    or later."""

    n: NDArray[np.int64]
    s1: Floats
    s2: Floats
    log_w: Floats
    peak: Floats

    @classmethod
    def empty(cls, k: int) -> PairEvidence:
        """No evidence yet about ``k`` variants."""
        zeros = np.zeros((k, k))
        return cls(np.zeros((k, k), np.int64), zeros, zeros, zeros, np.full((k, k), -np.inf))

    def advance(
        self, rows: NDArray[np.intp], values: Floats, first: int, min_cases: int
    ) -> PairEvidence:
        """The evidence after the variants ``rows`` answered a round of blocks.

        ``values`` is ``len(rows) × blocks`` (NaN: no score), ``first`` the race position
        (blocks run before this round). Wealth counts towards ``peak`` from the block whose
        1-based position is ``min_cases`` on. Pairs outside ``rows`` are left as they are."""
        d = values[:, None, :] - values[None, :, :]  # [a, b, t] = x_a,t - x_b,t
        present = ~np.isnan(d)
        d = np.where(present, d, 0.0)
        # All variants still running (most rounds of a short race): plain slices, no copies.
        at = (slice(None), slice(None)) if len(rows) == len(self.n) else np.ix_(rows, rows)
        # Sums over the past only (exclusive running sums): each bet sees what came before it.
        c1 = self.s1[at][..., None] + np.cumsum(d, axis=-1) - d
        c2 = self.s2[at][..., None] + np.cumsum(d * d, axis=-1) - d * d
        path = self.log_w[at][..., None] + np.cumsum(np.log1p(bets(c1, c2) * d), axis=-1)
        counted = present & (first + np.arange(1, values.shape[1] + 1) >= min_cases)
        peak = np.maximum(self.peak[at], np.where(counted, path, -np.inf).max(axis=-1))
        out = PairEvidence(
            self.n.copy(), self.s1.copy(), self.s2.copy(), self.log_w.copy(), self.peak.copy()
        )
        out.n[at] += present.sum(axis=-1)
        out.s1[at] = c1[..., -1] + d[..., -1]
        out.s2[at] = c2[..., -1] + d[..., -1] ** 2
        out.log_w[at] = path[..., -1]
        out.peak[at] = peak
        return out


def decision_bets(d: Floats) -> Floats:
    """The test's bets for the differences ``d`` in order (each from those before it)."""
    return bets(np.cumsum(d) - d, np.cumsum(d * d) - d * d)


def plug_in_bets(d: Floats, log_threshold: float) -> Floats:
    """The predictable plug-in bets of Waudby-Smith & Ramdas (2024, PrPl), tuned for a narrow
    interval rather than a fast test: ``sqrt(2 log(1/a) / (σ̂² t log(1 + t)))`` on the data
    mapped to [0, 1] (``y = (d + 1) / 2``), with their running variance estimate."""
    y = (d + 1.0) / 2.0
    t = np.arange(1, len(y) + 1)
    mean = (0.5 + np.cumsum(y)) / (t + 1)
    var = (0.25 + np.cumsum((y - mean) ** 2)) / (t + 1)
    before = np.concatenate([[0.25], var[:-1]])  # σ̂² of the data before each bet
    lam = np.sqrt(2.0 * log_threshold / (before * t * np.log1p(t)))
    return np.minimum(lam / 2.0, CAP)  # a bet on y is half as large a bet on d


def lower_bound(d: Floats, lam: Floats, counted: NDArray[np.bool_], log_threshold: float) -> float:
    """The lower end of the anytime-valid confidence sequence for the mean of ``d`` (paired
    differences in [-1, 1], in race order) staked with bets ``lam``: the smallest ``m`` whose
    wealth never reached the threshold at a ``counted`` difference. -1 when nothing is
    counted yet."""
    from scipy.optimize import brentq  # slow to import: only when an interval is asked for

    if not counted.any():
        return -1.0

    def excess(m: float) -> float:
        factors = np.maximum(1.0 + lam * (d - m), 1e-300)  # 0 only at m = 1: keep log finite
        return float(np.cumsum(np.log(factors))[counted].max() - log_threshold)

    # excess falls as m grows and is below 0 at m = 1: one look at 0 halves the bracket.
    if excess(0.0) >= 0:
        return float(brentq(excess, 0.0, 1.0, xtol=1e-4))
    if excess(-1.0) < 0:
        return -1.0
    return float(brentq(excess, -1.0, 0.0, xtol=1e-4))
