from __future__ import annotations

import numpy as np
import pytest

from robustness.resources import counterfit as cf

# Hand-made 4-d vocabulary: good/bad start close (antonyms), good/great start apart (synonyms),
# table/chair/desk form an unconstrained neighbourhood, tree is far from everything.
WORDS = ["good", "great", "bad", "awful", "table", "chair", "desk", "tree"]
VECTORS = np.array(
    [
        [1.0, 0.30, 0.0, 0.0],  # good
        [0.2, 1.00, 0.0, 0.0],  # great
        [1.0, 0.45, 0.0, 0.0],  # bad
        [0.6, -0.5, 0.3, 0.0],  # awful
        [0.0, 0.00, 1.0, 0.2],  # table
        [0.0, 0.10, 1.0, 0.3],  # chair
        [0.1, 0.00, 1.0, 0.0],  # desk
        [0.0, 0.00, 0.0, 1.0],  # tree
    ],
    dtype=np.float32,
)
W = {w: i for i, w in enumerate(WORDS)}


def pairs(*word_pairs: tuple[str, str]) -> np.ndarray:
    return np.array([(W[a], W[b]) for a, b in word_pairs] + [(W[b], W[a]) for a, b in word_pairs])


def cos(v: np.ndarray, a: str, b: str) -> float:
    x, y = v[W[a]], v[W[b]]
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


@pytest.fixture(scope="module")
def fitted() -> np.ndarray:
    syn = pairs(("good", "great"), ("bad", "awful"))
    ant = pairs(("good", "bad"))
    return cf.counter_fit(VECTORS, syn, ant, cf.CounterFitConfig(chunk_size=3))


def test_antonyms_end_farther_apart(fitted: np.ndarray) -> None:
    assert cos(VECTORS, "good", "bad") > 0.98
    assert cos(fitted, "good", "bad") <= 1e-6  # d >= delta = 1.0 reached


def test_synonyms_end_closer(fitted: np.ndarray) -> None:
    for a, b in (("good", "great"), ("bad", "awful")):
        assert cos(fitted, a, b) > cos(VECTORS, a, b) + 0.2
        assert cos(fitted, a, b) > 0.9


def test_unrelated_neighbourhood_preserved(fitted: np.ndarray) -> None:
    unit = cf.normalise_rows(VECTORS)
    for word in ("table", "chair", "desk", "tree"):
        np.testing.assert_allclose(fitted[W[word]], unit[W[word]], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fitted, axis=1), 1.0, atol=1e-5)


def test_one_step_matches_reference_update() -> None:
    # One antonym pair, one epoch: u' = normalise(u + lr((u.w)u - w)), the reference code's update.
    u, w = np.array([1.0, 0.0]), np.array([0.8, 0.6])
    out = cf.counter_fit(np.stack([u, w]), np.zeros((0, 2)), np.array([[0, 1], [1, 0]]),
                         cf.CounterFitConfig(epochs=1, vsp_top_k=0))
    expected_u = np.array([1.0, -0.6]) / np.sqrt(1.36)  # u + (0.8u - w) = (1.0, -0.6)
    expected_w = np.array([0.44, 1.08]) / np.sqrt(0.44**2 + 1.08**2)  # w + (0.8w - u)
    np.testing.assert_allclose(out, np.stack([expected_u, expected_w]), atol=1e-6)


def test_vsp_pulls_back_a_neighbour() -> None:
    # a (unconstrained) is a ρ-neighbour of b; the antonym term pushes b away from c (not a neighbour of
    # a). With VSP, a follows b; without it, the a-b distance grows.
    v = np.array([[1.0, 0.1, 0.0], [1.0, 0.0, 0.0], [0.6, 0.0, 0.8]], dtype=np.float32)
    ant = np.array([[1, 2], [2, 1]])
    with_vsp = cf.counter_fit(v, np.zeros((0, 2)), ant, cf.CounterFitConfig(vsp_top_k=2))
    without = cf.counter_fit(v, np.zeros((0, 2)), ant, cf.CounterFitConfig(vsp_top_k=0))
    unit = cf.normalise_rows(v)

    def d(m: np.ndarray, i: int, j: int) -> float:
        return 1 - float(m[i] @ m[j])

    assert d(without, 1, 2) >= 1 - 1e-6 and d(with_vsp, 1, 2) >= 1 - 1e-6
    assert d(without, 0, 1) > d(unit, 0, 1) + 0.1
    assert d(with_vsp, 0, 1) < 0.5 * d(without, 0, 1)


def test_antonym_pairs_are_removed_from_synonyms() -> None:
    both = pairs(("good", "bad"))
    out = cf.counter_fit(VECTORS, both, both, cf.CounterFitConfig(vsp_top_k=0))
    assert cos(out, "good", "bad") <= 1e-6


def test_read_pairs_both_orders_dedup_and_vocabulary(tmp_path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("good great\ngood great\nbad bad\nbad unknown\n\nawful bad \n")
    got = cf.read_pairs([f], W)
    expected = np.unique(pairs(("good", "great"), ("awful", "bad")), axis=0)
    np.testing.assert_array_equal(got, expected)
    assert cf.read_pairs([f], {}).shape == (0, 2)


def test_top_k_neighbours_self_first_even_with_duplicates() -> None:
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    idx, sim = cf.top_k_neighbours(v, 2, chunk_size=3)
    np.testing.assert_array_equal(idx[:, 0], [0, 1, 2, 3])
    assert idx[0, 1] == 1 and idx[1, 1] == 0
    np.testing.assert_array_equal(idx[2, :2], [2, 3])
    np.testing.assert_array_equal(idx[3, :2], [3, 2])
    np.testing.assert_allclose(sim[3], [1.0, 0.8, 0.6], atol=1e-6)


def test_vsp_pairs_within_rho_and_top_k() -> None:
    v = np.array([[1.0, 0.0], [0.9, 0.1], [0.85, 0.2], [0.0, 1.0]], dtype=np.float32)
    p, d = cf.vsp_pairs(v, rho=0.2, top_k=1)
    np.testing.assert_array_equal(p, [[0, 1], [1, 0], [2, 1]])
    assert (d <= 0.2).all()
    p_all, _ = cf.vsp_pairs(v, rho=0.2, top_k=3)
    assert {tuple(x) for x in p_all} == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)}


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        cf.CounterFitConfig(rho=3.0)
    with pytest.raises(ValueError):
        cf.CounterFitConfig(chunk_size=0)
    with pytest.raises(ValueError):
        cf.counter_fit(VECTORS, np.array([[0, 99]]), np.zeros((0, 2)))
