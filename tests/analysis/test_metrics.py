"""Metrics on hand-made inputs whose answers are worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustness.analysis import metrics as m


def test_result_rates():
    results = ["succeeded", "failed", "skipped", "failed"]
    assert m.attack_success_rate(results) == pytest.approx(1 / 3)  # 1 / (1 + 2)
    assert m.skipped_count(results) == 1
    assert math.isnan(m.attack_success_rate(["skipped"]))  # nothing attacked
    with pytest.raises(ValueError, match="unknown attack results"):
        m.attack_success_rate(["won"])


def test_accuracy_from_predictions_not_from_skips():
    # ex0 flipped, ex1 resisted, ex2 wrong before the attack, ex3 skipped by Kuleshov although right
    # (its goal, a low true-class score, was already met): it is not misclassified and stays correct.
    orig, adv, labels = [1, 0, 1, 0], [0, 0, None, None], [1, 0, 0, 0]
    assert list(m.clean_correct(orig, labels)) == [True, True, False, True]
    assert list(m.still_correct(orig, adv, labels)) == [False, True, False, True]
    assert m.proportion(m.clean_correct(orig, labels)) == 0.75
    assert math.isnan(m.proportion([]))
    assert list(m.still_correct([1], [float("nan")], [1])) == [True]  # pandas' missing adv_pred


def test_proportion_ci_is_exact():
    low, high = m.proportion_ci(0, 13)
    assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / 13))  # Clopper-Pearson: 0.247
    low, high = m.proportion_ci(13, 13)
    assert high == 1 and low == pytest.approx(0.025 ** (1 / 13))
    low, high = m.proportion_ci(30, 100)
    assert 0.21 < low < 0.3 < high < 0.41
    assert all(math.isnan(x) for x in m.proportion_ci(0, 0))


def test_means_and_words():
    assert m.mean_or_nan([10, 20, 6]) == 12
    assert math.isnan(m.mean_or_nan([]))
    # (1/5 + 1/4) / 2 = 0.225
    assert m.words_perturbed([1, 1], [5, 4]) == pytest.approx(0.225)


def test_exit_depth_and_efficacy():
    # L = 3, exits [2, 3, 2]: mean 7/3, speed-up 3 / (7/3) = 9/7, F(1) = 0, F(2) = 2/3 -> efficacy 1/3
    exits = [2, 3, 2]
    assert m.mean_exit_layer(exits) == pytest.approx(7 / 3)
    assert m.layer_speedup(3, 7 / 3) == pytest.approx(9 / 7)
    assert m.efficacy(exits, 3) == pytest.approx(1 / 3)
    assert m.efficacy(exits, 3) == pytest.approx((3 - 7 / 3) / (3 - 1))  # the closed form
    assert m.efficacy([3, 3, 3], 3) == 0.0  # everything at L
    assert m.efficacy([1, 1], 3) == 1.0  # everything at layer 1
    assert math.isnan(m.efficacy([1], 1))  # L = 1: undefined
    np.testing.assert_allclose(m.exit_distribution(exits, 3), [0, 2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="exit layers"):
        m.efficacy([4], 3)


def test_overthinking_as_kaya_et_al_compute_it():
    # labels 1,0,1,0 (the clean texts of the fixture)
    preds = [[1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]]
    # ex0: layer 1 right, last wrong -> destructive (and the only last-layer error); ex0, ex1, ex3: first right
    # at layer 1 < L -> wasteful; ex2: first right at L -> neither.
    result = m.overthinking(preds, [1, 0, 1, 0])
    assert result == (0.25, 1.0, 0.75)
    # right at layers 1 and 3 but not 2: first right at layer 1 -> wasteful (Kaya: earliest correct IC)
    once = m.overthinking([[1, 0, 1]], [1])
    assert (once.destructive, once.wasteful) == (0.0, 1.0) and math.isnan(once.destructive_of_wrong)
    # 2 of 4 wrong at L, one of them right earlier: destructive 1/4 of all, 1/2 of the misclassified
    assert m.overthinking([[1, 0], [0, 0], [1, 1], [0, 1]], [1, 1, 1, 1]) == (0.25, 0.5, 0.5)
    assert math.isnan(m.overthinking([[1, 1]], [1]).destructive_of_wrong)  # nothing misclassified
    single = m.overthinking([[1], [0]], [1, 1])  # single-head baseline
    assert all(math.isnan(x) for x in single)
    with pytest.raises(ValueError, match="differ in length"):
        m.overthinking([[1, 0], [1, 0, 1]], [1, 1])


def test_rescued_and_hurt():
    # ex A: last layer right (1), exit wrong (0) -> hurt; ex B: last wrong (1 vs 0), exit right -> rescued;
    # ex C: both right -> neither.
    rescued, hurt = m.exit_vs_last_layer([[0, 0, 1], [0, 0, 1], [0, 0, 0]], [0, 0, 0], [1, 0, 0])
    assert rescued == pytest.approx(1 / 3)
    assert hurt == pytest.approx(1 / 3)
    assert all(math.isnan(x) for x in m.exit_vs_last_layer([[1]], [1], [1]))


def test_flip_rates():
    # layer 1 flips in ex0, ex1; layer 2 in ex0; layer 3 in ex0, ex2 -> [2/3, 1/3, 2/3]
    orig = [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    adv = [[0, 0, 1], [1, 0, 0], [0, 0, 1]]
    np.testing.assert_allclose(m.flip_rates(orig, adv), [2 / 3, 1 / 3, 2 / 3])
    assert m.flip_rates([], []).size == 0


def test_bootstrap_mean_ci():
    assert m.bootstrap_mean_ci([4, 4, 4]) == (4.0, 4.0)  # no variation
    assert m.bootstrap_mean_ci([7]) == (7.0, 7.0)
    values = list(range(1, 41))
    low, high = m.bootstrap_mean_ci(values, seed=3)
    assert (low, high) == m.bootstrap_mean_ci(values, seed=3)  # fixed seed -> same interval
    assert 16 < low < 20.5 < high < 25  # normal approx: 20.5 ± 1.96·1.82
    assert all(math.isnan(x) for x in m.bootstrap_mean_ci([]))


def test_mcnemar_exact():
    # 5 pairs where only a is true, 1 where only b is: m = 6, P[Bin(6, 1/2) <= 1] = 7/64, p = 14/64
    a = [True] * 5 + [False] + [True] * 3 + [False] * 2
    b = [False] * 5 + [True] + [True] * 3 + [False] * 2
    result = m.mcnemar_exact(a, b)
    assert (result.n, result.only_a, result.only_b) == (11, 5, 1)
    assert result.p_value == pytest.approx(14 / 64)
    assert m.mcnemar_exact([True], [True]).p_value == 1.0  # no discordant pairs
    assert m.mcnemar_exact([True] * 3, [False] * 3).p_value == 0.25  # 2 · (1/2)^3
    scipy_stats = pytest.importorskip("scipy.stats")
    assert result.p_value == pytest.approx(scipy_stats.binomtest(1, 6, 0.5).pvalue)


def test_efficacy_by_outcome_by_hand():
    # L = 4, efficacy = (4 − mean exit) / 3. ex0 succeeded 2 -> 4, ex1 failed 2 -> 3, ex2 skipped at 3,
    # ex3 succeeded 1 -> 4. Clean exits 2, 2, 3, 1; final exits 4, 3, 3, 4.
    table = m.efficacy_by_outcome(["succeeded", "failed", "skipped", "succeeded"], [2, 2, 3, 1], [4, 3, None, 4], 4)
    assert list(table) == ["all", "succeeded", "failed", "skipped"]
    expected = {"all": (2 / 3, 1 / 6),  # clean mean 2, final mean 3.5
                "succeeded": (5 / 6, 0.0),  # clean mean 1.5; every final exit at L drives it to 0
                "failed": (2 / 3, 1 / 3), "skipped": (1 / 3, 1 / 3)}  # a skipped example keeps its clean exit
    for outcome, (clean, final) in expected.items():
        assert table[outcome] == (pytest.approx(clean), pytest.approx(final)), outcome
    empty = m.efficacy_by_outcome(["succeeded", "failed"], [1, 2], [3, 2], 3)["skipped"]
    assert all(math.isnan(v) for v in empty)  # no skipped example: undefined, not 0
    with pytest.raises(ValueError, match="unknown attack results"):
        m.efficacy_by_outcome(["won"], [1], [2], 3)
    with pytest.raises(ValueError, match="differ in length"):
        m.efficacy_by_outcome(["failed"], [1, 2], [2], 3)


def test_efficacy_and_waffles_trapezoid_differ_by_the_documented_affine_map():
    # WAFFLE's attack_exit.efficacy: counts over layers 0..L (layer 0 empty), trapezoid of the CDF on x = 1/(L+1)..1
    def waffle_code(exits: list[int], layers: int) -> float:
        counts = np.bincount(exits, minlength=layers + 1)
        cdf = np.cumsum(counts) / counts.sum()
        x = (np.arange(layers + 1) + 1) / (layers + 1)
        return float(np.sum((cdf[1:] + cdf[:-1]) / 2 * np.diff(x)))

    for exits, layers in (([2, 3, 2], 3), ([12] * 5, 12), ([1, 1, 6, 9, 12], 12)):
        ours = m.efficacy(exits, layers)
        assert waffle_code(exits, layers) == pytest.approx(((layers - 1) * ours + 0.5) / (layers + 1))
    assert waffle_code([12] * 5, 12) == pytest.approx(1 / 26) and m.efficacy([12] * 5, 12) == 0.0


def test_slowdown_metrics_by_hand():
    # L = 4; ex0 pushed from layer 2 to 4, ex1 from 2 to 3; ex2 and ex3 skipped (their clean exits count)
    orig, adv = [2, 2, 3, 4], [4, 3, None, None]
    assert list(m.final_exits(orig, adv)) == [4, 3, 3, 4]
    assert m.slowdown_success_rate(adv, 4) == 0.5  # 1 of the 2 attacked reaches layer 4
    assert m.slowdown_success_rate(adv, 3) == 1.0
    assert math.isnan(m.slowdown_success_rate([None, None], 4))
    assert m.mean_exit_increase(orig, adv) == 0.75  # (2 + 1 + 0 + 0) / 4
    # clean mean 11/4, under attack 14/4: (4/3.5 − 1) / (4/2.75 − 1) = (1/7) / (5/11) = 11/35
    assert m.efficiency_gain_left(4, 2.75, 3.5) == pytest.approx(11 / 35)
    assert m.efficiency_gain_left(4, 2.0, 2.0) == 1.0 and m.efficiency_gain_left(4, 2.0, 4.0) == 0.0
    assert math.isnan(m.efficiency_gain_left(4, 4.0, 4.0))  # nothing to lose at full depth
    # finals: attacked ex0, ex1 take their adversarial prediction, skipped ex2, ex3 their clean one
    assert m.accuracy_at_exit([1, 0, 1, 1], [0, 0, None, None], [1, 0, 0, 1]) == 0.5
