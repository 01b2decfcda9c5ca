"""Every metric of the suite, defined once, as pure functions on lists / arrays.

Notation: a run has ``n`` recorded examples with results succeeded (S), failed (F) and skipped (K);
the *attacked* examples are S + F. ``L`` is the number of layers (internal classifiers) of the model.
All rates are fractions in [0, 1]; an undefined rate (empty denominator, single-head model) is NaN.

The metrics of exit layers and per-layer predictions (efficacy, slowdown, overthinking, flip rates) are defined in
:mod:`robustness.analysis.exit_metrics` and the speed-ups in :mod:`robustness.schema.speedup`; both are
re-exported here, so every metric reads as ``metrics.<name>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

from robustness.analysis.exit_metrics import (
    NAN,
    Overthinking,
    accuracy_at_exit,
    efficacy,
    exit_distribution,
    exit_vs_last_layer,
    final_exits,
    flip_rates,
    mean_exit_increase,
    mean_exit_layer,
    overthinking,
    slowdown_success_rate,
)
from robustness.schema.speedup import efficiency_gain_left, layer_speedup  # noqa: F401 (defined there)

__all__ = ["NAN", "OUTCOMES", "McNemar", "Overthinking", "accuracy_at_exit", "attack_success_rate",
           "bootstrap_mean_ci", "clean_correct", "efficacy", "efficacy_by_outcome", "efficiency_gain_left",
           "exit_distribution", "exit_vs_last_layer", "final_exits", "flip_rates", "layer_speedup", "mcnemar_exact",
           "mean_exit_increase", "mean_exit_layer", "mean_or_nan", "overthinking", "proportion", "proportion_ci",
           "skipped_count", "slowdown_success_rate", "still_correct", "strict_attack_success_rate", "strict_results",
           "strict_still_correct", "words_perturbed"]


def _results(results: Sequence[str]) -> tuple[int, int, int]:
    unknown = set(results) - {"succeeded", "failed", "skipped"}
    if unknown:
        raise ValueError(f"unknown attack results: {sorted(unknown)}")
    return (sum(r == "succeeded" for r in results), sum(r == "failed" for r in results),
            sum(r == "skipped" for r in results))


def clean_correct(orig_preds: Sequence[int], labels: Sequence[int]) -> np.ndarray:
    """Per example: the clean text is classified correctly (``orig_pred == label``). Never derived from
    ``result == "skipped"``: a recipe also skips a correct example whose goal is already met (Kuleshov's
    target score), and that example is not misclassified."""
    if len(orig_preds) != len(labels):
        raise ValueError("orig_preds and labels differ in length")
    return np.asarray(orig_preds, dtype=int) == np.asarray(labels, dtype=int)


def still_correct(orig_preds: Sequence[int], adv_preds: Sequence[int | None], labels: Sequence[int]) -> np.ndarray:
    """Per example: correct before the attack and still correct after it, i.e. ``orig_pred == label`` and the
    prediction on the final text (``adv_pred``; the original text when the example was not attacked) is the
    label. Its mean over all n sampled examples is the accuracy under attack, the verdict's endpoint."""
    if not len(orig_preds) == len(adv_preds) == len(labels):
        raise ValueError("orig_preds, adv_preds and labels differ in length")
    final = [o if a is None or a != a else a for o, a in zip(orig_preds, adv_preds, strict=True)]
    return clean_correct(orig_preds, labels) & (np.asarray(final, dtype=int) == np.asarray(labels, dtype=int))


def proportion(flags: Sequence[bool]) -> float:
    """Share of true values; NaN for none."""
    return float(np.mean(np.asarray(flags, dtype=bool))) if len(flags) else NAN


def proportion_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion, from scipy's ``binomtest``; it stays
    informative at 0 or n successes (0/13 gives [0, 0.247]). ``(nan, nan)`` for n = 0."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return NAN, NAN
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


def attack_success_rate(results: Sequence[str]) -> float:
    """Attack success rate = S / (S + F), over attacked examples."""
    succeeded, failed, _ = _results(results)
    return succeeded / (succeeded + failed) if succeeded + failed else NAN


def skipped_count(results: Sequence[str]) -> int:
    """K: examples misclassified on the clean text, hence not attacked."""
    return _results(results)[2]


def mean_or_nan(values: Sequence[float | None]) -> float:
    """Arithmetic mean; NaN for an empty sequence, or when any value is unknown (None/NaN: a field that an
    older record schema lacks -- unknown, never 0). Used for queries, forward passes and layers per attacked
    example (the caller passes only non-skipped examples)."""
    values = list(values)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return NAN
    return float(np.mean(values)) if values else NAN


def strict_results(results: Sequence[str], valid: Sequence[bool | None]) -> list[str]:
    """Results under strict re-validation (:mod:`robustness.revalidate`): a succeeded example whose adversarial
    text fails re-validation (``valid`` False) counts as ``failed`` -- the attack found no valid text, so the
    original prediction stands; every other result is kept. ``valid`` is read only for succeeded examples, where
    None (not re-validated) is a ValueError: strict metrics need every success checked."""
    if len(results) != len(valid):
        raise ValueError("results and valid differ in length")
    _results(results)
    if any(r == "succeeded" and v is None for r, v in zip(results, valid, strict=True)):
        raise ValueError("a succeeded example was not re-validated; strict metrics need them all")
    return ["failed" if r == "succeeded" and not v else r for r, v in zip(results, valid, strict=True)]


def strict_attack_success_rate(results: Sequence[str], valid: Sequence[bool | None]) -> float:
    """Strict attack success rate = S_valid / (S + F): the attacked examples are the same as for the raw rate
    (:func:`attack_success_rate`), only successes with a valid adversarial text count."""
    return attack_success_rate(strict_results(results, valid))


def strict_still_correct(orig_preds: Sequence[int], adv_preds: Sequence[int | None], labels: Sequence[int],
                         results: Sequence[str], valid: Sequence[bool | None]) -> np.ndarray:
    """:func:`still_correct` under strict re-validation: an example whose adversarial text fails re-validation
    is judged on its original prediction (its ``adv_pred`` is ignored, as for a skipped example). Its mean over
    all n examples is the strict accuracy under attack, >= the raw one."""
    strict = strict_results(results, valid)
    final = [None if r == "succeeded" and s == "failed" else a
             for r, s, a in zip(results, strict, adv_preds, strict=True)]
    return still_correct(orig_preds, final, labels)


def words_perturbed(words_changed: Sequence[int], words_total: Sequence[int]) -> float:
    """Mean over successful attacks of words_changed / words_total (a fraction, not a percentage)."""
    if len(words_changed) != len(words_total):
        raise ValueError("words_changed and words_total differ in length")
    fractions = [c / t for c, t in zip(words_changed, words_total, strict=True) if c is not None and t]
    return float(np.mean(fractions)) if fractions else NAN


OUTCOMES = ("all", "succeeded", "failed", "skipped")


def efficacy_by_outcome(results: Sequence[str], orig_exits: Sequence[int], adv_exits: Sequence[int | None],
                        num_layers: int) -> dict[str, tuple[float, float]]:
    """WAFFLE's efficacy table: per outcome in :data:`OUTCOMES` (all n examples, then those the attack
    succeeded on, failed on, skipped), ``(clean, final)`` = :func:`efficacy` of the clean texts' exits and of the
    final texts' exits (the adversarial text where the example was attacked, else the clean one, so a skipped
    example's two are equal). NaN for an outcome with no examples."""
    if not len(results) == len(orig_exits) == len(adv_exits):
        raise ValueError("results, orig_exits and adv_exits differ in length")
    _results(results)
    outcome = np.asarray(results, dtype=object)
    clean, final = np.asarray(orig_exits, dtype=float), final_exits(orig_exits, adv_exits)
    out = {}
    for name in OUTCOMES:
        chosen = np.ones(len(outcome), dtype=bool) if name == "all" else outcome == name
        out[name] = (efficacy(clean[chosen], num_layers), efficacy(final[chosen], num_layers))
    return out


def bootstrap_mean_ci(values: Sequence[float], seed: int = 0, confidence: float = 0.95,
                      n_resamples: int = 2000) -> tuple[float, float]:
    """BCa bootstrap interval of the mean (``scipy.stats.bootstrap``), for means without a closed-form interval
    (queries, exit layers); proportions use :func:`proportion_ci`. A single value or constant values give
    ``(v, v)``; no values ``(nan, nan)``."""
    array = np.asarray([v for v in values if v is not None and v == v], dtype=float)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if array.size == 0:
        return NAN, NAN
    if array.size == 1 or np.all(array == array[0]):
        return float(array[0]), float(array[0])
    result = stats.bootstrap((array,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             random_state=np.random.default_rng(seed), method="BCa")
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


class McNemar(NamedTuple):
    n: int  #: paired examples
    only_a: int  #: outcome true for a, false for b
    only_b: int  #: outcome true for b, false for a
    p_value: float


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """Exact McNemar test on paired binary outcomes: with discordant counts b₁₀ (a only) and b₀₁ (b only),
    the two-sided binomial test of b₁₀ in m = b₁₀ + b₀₁ trials at ½ (``scipy.stats.binomtest``); p = 1 when
    m = 0."""
    if len(a) != len(b):
        raise ValueError("paired outcomes differ in length")
    a_arr, b_arr = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int((a_arr & ~b_arr).sum()), int((~a_arr & b_arr).sum())
    p_value = float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    return McNemar(len(a_arr), only_a, only_b, p_value)
