"""Tango's interval, the paired TOST and McNemar's minimum detectable difference against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from robustness.analysis.paired_stats import mcnemar_mdd, paired_tost, tango_interval, tango_statistic


def _score_by_likelihood(delta: float, b: int, c: int, n: int) -> float:
    """Tango's statistic from first principles: maximise the multinomial likelihood of (b, c, rest) over
    q = P(only the baseline right) with P(only the setting right) = q + delta, then divide b - c - n delta by the
    standard error of n times the paired difference under that fit, sqrt(n (p12 + p21 - delta^2))."""
    low, high = max(0.0, -delta) + 1e-12, (1 - delta) / 2 - 1e-12

    def minus_loglik(q: float) -> float:
        return -(b * math.log(q + delta) + c * math.log(q) + (n - b - c) * math.log(1 - 2 * q - delta))

    q = optimize.minimize_scalar(minus_loglik, bounds=(low, high), method="bounded",
                                 options={"xatol": 1e-13}).x
    return (b - c - n * delta) / math.sqrt(n * (2 * q + delta - delta ** 2))


@pytest.mark.parametrize(("b", "c", "n"), [(1, 7, 21), (6, 16, 161), (30, 12, 500), (3, 0, 40)])
def test_tango_statistic_is_the_score_statistic_of_the_restricted_likelihood(b, c, n):
    for delta in (-0.3, -0.05, 0.02, 0.1):
        assert tango_statistic(delta, b, c, n) == pytest.approx(_score_by_likelihood(delta, b, c, n), rel=1e-5)
    # at delta = 0 it is McNemar's asymptotic statistic
    assert tango_statistic(0.0, b, c, n) == pytest.approx((b - c) / math.sqrt(b + c))


def test_tango_interval_bounds_are_where_the_score_test_turns():
    z = stats.norm.ppf(0.975)
    low, high = tango_interval(1, 7, 21)  # Bentur et al. 2009, the example of Fagerland et al. 2014
    assert (round(low, 3), round(high, 3)) == (-0.517, -0.026)
    assert _score_by_likelihood(low, 1, 7, 21) == pytest.approx(z, abs=1e-4)
    assert _score_by_likelihood(high, 1, 7, 21) == pytest.approx(-z, abs=1e-4)
    assert low < (1 - 7) / 21 < high


def test_no_discordant_pair_gives_an_interval_that_shrinks_with_n():
    # closed form with b = c = 0: |T(d)| = sqrt(n |d| / (1 - |d|)) = z  =>  |d| = z^2 / (n + z^2)
    z = stats.norm.ppf(0.95)
    for n in (5, 100, 1000):
        low, high = tango_interval(0, 0, n, 0.90)
        assert high == pytest.approx(z ** 2 / (n + z ** 2), rel=1e-6) and low == pytest.approx(-high, rel=1e-6)
    assert paired_tost(0, 0, 5, 0.05, 0.05).p_value > 0.05  # five identical examples prove nothing
    assert paired_tost(0, 0, 1000, 0.05, 0.05).p_value < 1e-6


@pytest.mark.parametrize(("b", "c", "n"), [(30, 32, 1000), (12, 6, 120), (3, 2, 20), (40, 5, 300), (0, 9, 400)])
def test_tost_rejects_exactly_when_the_90_percent_interval_lies_within_the_margin(b, c, n):
    for margin in (0.02, 0.05, 0.1):
        tost = paired_tost(b, c, n, margin, 0.05)
        inside = -margin < tost.ci_low and tost.ci_high < margin
        assert (tost.p_value < 0.05) == inside
        assert (tost.ci_low, tost.ci_high) == pytest.approx(tango_interval(b, c, n, 0.90))


def _exact_mcnemar_power(n: int, p10: float, p01: float, alpha: float) -> float:
    """Power of the two-sided exact McNemar test by enumeration: m discordant pairs ~ Bin(n, p10 + p01), b of
    them 'setting only' ~ Bin(m, p10 / (p10 + p01)); reject when 2 P(X <= min(b, m - b)) < alpha, X ~ Bin(m, 1/2)."""
    psi = p10 + p01
    power = 0.0
    for m in range(1, n + 1):
        b = np.arange(m + 1)
        reject = 2 * stats.binom.cdf(np.minimum(b, m - b), m, 0.5) < alpha
        power += stats.binom.pmf(m, n, psi) * stats.binom.pmf(b[reject], m, p10 / psi).sum()
    return power


@pytest.mark.parametrize(("n", "psi"), [(500, 0.2), (200, 0.3), (1000, 0.1)])
def test_mdd_has_80_percent_power(n, psi):
    mdd = mcnemar_mdd(n, psi, 0.05)
    # Connor's (1987) quadratic in closed form: (n + zb^2) d^2 - 2 za sqrt(n psi) d + (za^2 - zb^2) psi = 0
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.80)
    root = (2 * za * math.sqrt(n * psi) + math.sqrt(4 * za ** 2 * n * psi - 4 * (n + zb ** 2) * (za ** 2 - zb ** 2)
                                                     * psi)) / (2 * (n + zb ** 2))
    assert mdd == pytest.approx(root, rel=1e-8)
    # ... and the exact test it stands for reaches about 80% power there (asymptotics: a few points off)
    assert _exact_mcnemar_power(n, (psi + mdd) / 2, (psi - mdd) / 2, 0.05) == pytest.approx(0.80, abs=0.04)


def test_mdd_is_undefined_without_discordance_or_with_tiny_n():
    assert math.isnan(mcnemar_mdd(500, 0.0, 0.05))
    assert math.isnan(mcnemar_mdd(3, 0.5, 0.05))  # n <= 1.96^2: no difference reaches the power
    with pytest.raises(ValueError, match="discordance"):
        mcnemar_mdd(10, 1.5, 0.05)
