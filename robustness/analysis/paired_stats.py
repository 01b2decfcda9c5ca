"""Equivalence and power of a paired comparison of two accuracies (the verdict's endpoint on the same examples).

On n paired examples let ``b`` be the count where only the setting is right under attack and ``c`` the count
where only the baseline is; the difference in accuracy under attack is Δ = (b − c) / n and the discordance rate
is ψ = (b + c) / n.

* :func:`tango_interval` -- Tango's (1998) asymptotic score interval for Δ: the Δ₀ whose score statistic
  T(Δ₀) = (b − c − nΔ₀) / √(n(2q̃ + Δ₀(1 − Δ₀))) lies within ±z, with q̃ the maximum likelihood estimate of
  P(only the baseline right) restricted to Δ = Δ₀ (closed form, Tango 1998 eq. 4). Fagerland, Lydersen & Laake
  (2014, "Recommended tests and confidence intervals for paired binomial proportions", Stat Med 33:2850) recommend
  it; its T(0) is McNemar's asymptotic statistic (b − c) / √(b + c).
* :func:`paired_tost` -- two one-sided tests of H₀: |Δ| ≥ δ on that score statistic: p = max(P(Z ≥ T(−δ)),
  P(Z ≤ T(δ))); equivalence at level α iff p < α, which (T decreases in Δ₀) is iff the (1 − 2α) Tango interval
  lies within (−δ, δ).
* :func:`mcnemar_mdd` -- the minimum detectable difference at 80% power: the |Δ| that solves Connor's (1987,
  "Sample size for testing differences in proportions for the paired-sample design", Biometrics 43:207) sample
  size formula for McNemar's test, n = (z₁₋α/₂ √ψ + z₁₋β √(ψ − Δ²))² / Δ², at the observed n and ψ. The
  formula is asymptotic; the exact McNemar test the verdict uses has a little less power there (about 77–78%
  at n = 200..1000, tests/analysis/test_paired_stats.py enumerates it).

Why hand-written: statsmodels (0.15) offers paired-proportion intervals only for the risk ratio (a private Nam
helper) and a paired *t* TOST (``ttost_paired``), i.e. a Wald interval, which has zero width when no pair is
discordant and so would declare five identical examples equivalent; neither scipy nor statsmodels has McNemar
power. The formulas above are short, cited, and tested against independent computations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from scipy import optimize, stats

__all__ = ["POWER", "PairedTost", "mcnemar_mdd", "paired_tost", "tango_interval", "tango_statistic"]

#: The power at which :func:`mcnemar_mdd` reports the minimum detectable difference.
POWER = 0.80
_EDGE = 1e-9


class PairedTost(NamedTuple):
    p_value: float  #: the larger of the two one-sided p-values
    ci_low: float  #: the (1 − 2α) Tango interval of Δ
    ci_high: float


def _check(b: int, c: int, n: int) -> None:
    if min(b, c) < 0 or b + c > n or n < 1:
        raise ValueError(f"paired counts need 0 <= b, c and b + c <= n >= 1, got b={b}, c={c}, n={n}")


def tango_statistic(delta: float, b: int, c: int, n: int) -> float:
    """Tango's score statistic T(Δ₀) for H₀: Δ = ``delta`` (module docstring); it decreases in ``delta``."""
    _check(b, c, n)
    big_b = -b - c + (2 * n - b + c) * delta
    small_c = -c * delta * (1 - delta)
    q = (math.sqrt(max(big_b * big_b - 8 * n * small_c, 0.0)) - big_b) / (4 * n)
    numerator = b - c - n * delta
    variance = n * (2 * q + delta * (1 - delta))
    if variance <= 0:  # only where the data and H0 agree exactly (e.g. no discordant pair and delta = 0)
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / math.sqrt(variance)


def tango_interval(b: int, c: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Tango's asymptotic score interval at ``confidence`` for Δ = (b − c) / n (module docstring)."""
    _check(b, c, n)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    estimate = (b - c) / n

    def bound(target: float) -> float:
        return optimize.brentq(lambda d: tango_statistic(d, b, c, n) - target, -1 + _EDGE, 1 - _EDGE, xtol=1e-12)

    low = -1.0 if estimate == -1 else bound(z)
    high = 1.0 if estimate == 1 else bound(-z)
    return low, high


def paired_tost(b: int, c: int, n: int, margin: float, alpha: float) -> PairedTost:
    """Two one-sided score tests of |Δ| >= ``margin`` (module docstring); ``margin`` and ``alpha`` in (0, 1)."""
    if not 0 < margin < 1 or not 0 < alpha < 0.5:
        raise ValueError(f"paired TOST needs margin in (0, 1) and alpha in (0, 0.5), got {margin}, {alpha}")
    p_low = float(stats.norm.sf(tango_statistic(-margin, b, c, n)))  # H0: delta <= -margin
    p_high = float(stats.norm.cdf(tango_statistic(margin, b, c, n)))  # H0: delta >= margin
    low, high = tango_interval(b, c, n, 1 - 2 * alpha)
    return PairedTost(max(p_low, p_high), low, high)


def mcnemar_mdd(n: int, discordance: float, alpha: float, power: float = POWER) -> float:
    """The smallest |Δ| that a two-sided McNemar test at level ``alpha`` detects with probability ``power`` in
    ``n`` pairs whose discordance rate is ``discordance`` (Connor 1987; module docstring). NaN with no discordant
    pairs (ψ = 0) or where no Δ <= √ψ reaches the power (n <= z₁₋α/₂²). A value above ψ means that no difference
    this discordance allows can be detected."""
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")
    if n < 1 or not 0 <= discordance <= 1:
        raise ValueError(f"McNemar MDD needs n >= 1 and a discordance rate in [0, 1], got {n}, {discordance}")
    if discordance == 0:
        return math.nan
    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    root = math.sqrt(discordance)

    def gap(delta: float) -> float:
        return math.sqrt(n) * delta - z_a * root - z_b * math.sqrt(max(discordance - delta * delta, 0.0))

    if gap(root) <= 0:
        return math.nan
    return float(optimize.brentq(gap, 0.0, root, xtol=1e-12))
