"""Metrics on hand-made inputs whose answers are worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustness.analysis import metrics as m


def test_result_rates():
    results = ["succeeded", "failed", "skipped", "failed"]
    assert m.original_accuracy(results) == 0.75  # (4 - 1 skipped) / 4
    assert m.accuracy_under_attack(results) == 0.5  # 2 failed / 4
    assert m.attack_success_rate(results) == pytest.approx(1 / 3)  # 1 / (1 + 2)
    assert m.skipped_count(results) == 1
    assert math.isnan(m.attack_success_rate(["skipped"]))  # nothing attacked
    assert math.isnan(m.original_accuracy([]))
    with pytest.raises(ValueError, match="unknown attack results"):
        m.original_accuracy(["won"])


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


def test_overthinking():
    # labels 1,0,1,0 (the clean texts of the fixture)
    preds = [[1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]]
    # ex0: layer 1 right, last wrong -> destructive; ex1, ex3: right from layer 1 -> wasteful;
    # ex2: right only at layer 3 = L -> neither.
    result = m.overthinking(preds, [1, 0, 1, 0])
    assert result.destructive == 0.25
    assert result.wasteful == 0.5
    # right at layers 1 and 3 but not 2: stays right only from layer 3 -> not wasteful, not destructive
    assert m.overthinking([[1, 0, 1]], [1]) == (0.0, 0.0)
    single = m.overthinking([[1], [0]], [1, 1])  # single-head baseline
    assert math.isnan(single.destructive) and math.isnan(single.wasteful)
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


def test_bootstrap_ci():
    assert m.bootstrap_ci([1, 1, 1]) == (1.0, 1.0)  # no variation
    values = [1] * 30 + [0] * 70
    low, high = m.bootstrap_ci(values, seed=3)
    assert (low, high) == m.bootstrap_ci(values, seed=3)  # fixed seed -> same interval
    assert 0.18 < low < 0.3 < high < 0.42  # normal approx: 0.3 ± 1.96·0.046
    assert all(math.isnan(x) for x in m.bootstrap_ci([]))


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
