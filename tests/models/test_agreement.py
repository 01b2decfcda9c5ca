"""What "the same result" across devices means (robustness.models.agreement), on hand-made logits: an exact
tie perturbed by 1e-6 may flip a prediction or an exit; a clear margin may not."""

from __future__ import annotations

import math

import pytest
import torch

from robustness.models.agreement import LOGIT_TOL, compare_evaluations, near_tie
from robustness.models.exits import setting_exit


def logits(*layers: list[list[float]]) -> torch.Tensor:
    """``[L, N, C]`` from one ``[N, C]`` list per layer."""
    return torch.tensor(layers, dtype=torch.float32)


def test_identical_evaluations_agree() -> None:
    a = logits([[0.0, 1.0], [2.0, 0.0]], [[0.5, 0.1], [1.0, 3.0]])
    result = compare_evaluations(a, a.clone(), "patience:1")
    assert result.same and result.disagreements == [] and result.max_logit_diff == 0.0 and result.n == 2


def test_a_tie_perturbed_by_1e6_may_flip_the_prediction() -> None:
    a = logits([[0.0, 3.0]], [[1.0, 1.0 + 1e-6]])
    b = logits([[0.0, 3.0]], [[1.0 + 1e-6, 1.0]])
    result = compare_evaluations(a, b, "full")
    [flip] = result.disagreements
    assert (flip.kind, flip.a, flip.b, flip.layer, flip.explained) == ("prediction", 1, 0, 2, True)
    assert result.same and result.within_tol


def test_a_clear_margin_may_not_flip_the_prediction() -> None:
    a = logits([[0.0, 3.0]], [[1.0, 2.0]])
    b = logits([[0.0, 3.0]], [[2.0, 1.0]])
    result = compare_evaluations(a, b, "full")
    [flip] = result.unexplained
    assert flip.kind == "prediction" and flip.layer == 2
    assert not result.same and not result.within_tol and result.max_logit_diff == 1.0


def test_a_near_tie_explains_a_patience_exit_that_moves() -> None:
    # patience 1: a repeats class 0 at layer 2 (exit 2); b's layer 2 is the same near-tie the other way (exit 3)
    a = logits([[2.0, 0.0]], [[1.0 + 1e-6, 1.0]], [[0.0, 2.0]])
    b = logits([[2.0, 0.0]], [[1.0, 1.0 + 1e-6]], [[0.0, 2.0]])
    assert setting_exit(a, "patience:1")[0].tolist() == [2] and setting_exit(b, "patience:1")[0].tolist() == [3]
    result = compare_evaluations(a, b, "patience:1")
    exit_diff, pred_diff = result.disagreements
    assert (exit_diff.kind, exit_diff.a, exit_diff.b, exit_diff.layer, exit_diff.explained) == ("exit", 2, 3, 2, True)
    assert (pred_diff.kind, pred_diff.a, pred_diff.b, pred_diff.explained) == ("prediction", 0, 1, True)
    assert result.same


def test_a_patience_exit_may_not_move_where_the_margin_is_clear() -> None:
    a = logits([[2.0, 0.0]], [[2.0, 0.0]], [[0.0, 2.0]])
    b = logits([[2.0, 0.0]], [[0.0, 2.0]], [[0.0, 2.0]])
    result = compare_evaluations(a, b, "patience:1")
    assert [(d.kind, d.layer, d.explained) for d in result.disagreements] == [("exit", 2, False),
                                                                                ("prediction", 2, False)]
    assert not result.same


def test_only_the_first_divergence_needs_explaining() -> None:
    # the near-tie at layer 1 changes b's counter path; layer 2 then differs by a clear margin, which follows
    a = logits([[1.0 + 1e-6, 1.0]], [[3.0, 0.0]], [[3.0, 0.0]])
    b = logits([[1.0, 1.0 + 1e-6]], [[3.0, 0.0]], [[3.0, 0.0]])
    assert compare_evaluations(a, b, "patience:1").same  # exits 2 vs 3, explained at layer 1


def test_an_entropy_exit_may_move_only_near_its_threshold() -> None:
    first = [0.0, 0.5]
    log_p = torch.tensor(first).log_softmax(-1)
    threshold = float(-(log_p.exp() * log_p).sum()) + 2e-7  # a's layer 1 is just confident enough
    a = logits([first], [[0.0, 3.0]])
    near = logits([[0.0, 0.5 - 1e-5]], [[0.0, 3.0]])  # entropy a hair above the threshold: not confident
    far = logits([[0.0, 0.0]], [[0.0, 3.0]])  # ln 2, far above it
    setting = f"entropy:{threshold!r}"
    assert setting_exit(a, setting)[0].tolist() == [1] and setting_exit(near, setting)[0].tolist() == [2]
    [moved] = compare_evaluations(a, near, setting).disagreements
    assert (moved.kind, moved.layer, moved.explained) == ("exit", 1, True)
    assert not compare_evaluations(a, far, setting).disagreements[0].explained


def test_a_maxprob_exit_reads_its_statistic_tolerance() -> None:
    # max probability moves by at most eps / 2 when each logit moves by eps = tol / 2
    a = logits([[0.0, math.log(3.0)]], [[0.0, 3.0]])  # max probability exactly 0.75
    b = logits([[0.0, math.log(3.0) - 1e-5]], [[0.0, 3.0]])
    result = compare_evaluations(a, b, "maxprob:0.75")
    assert [d.kind for d in result.disagreements] == ["exit"] and result.same


def test_exits_given_by_a_run_that_ignores_the_rule_are_unexplained() -> None:
    a = logits([[2.0, 0.0]], [[2.0, 0.0]], [[2.0, 0.0]])
    result = compare_evaluations(a, a.clone(), "patience:1", a_exit=torch.tensor([2]), b_exit=torch.tensor([3]))
    [moved] = result.disagreements
    assert not moved.explained and "agree at every layer" in moved.reason and not result.same


def test_given_predictions_are_compared_at_their_exit() -> None:
    a = logits([[0.0, 3.0]], [[1.0, 1.0 + 1e-7]])
    result = compare_evaluations(a, a.clone(), "full", a_pred=torch.tensor([1]), b_pred=torch.tensor([0]))
    assert result.same and result.disagreements[0].explained


def test_near_tie_and_bad_shapes() -> None:
    assert near_tie(torch.tensor([1.0, 1.0 + LOGIT_TOL / 2]), 0, 1) and not near_tie(torch.tensor([0.0, 1.0]), 0, 1)
    with pytest.raises(ValueError, match=r"\[L, N, C\]"):
        compare_evaluations(torch.zeros(2, 3, 2), torch.zeros(2, 4, 2), "full")


def test_early_exit_agrees_with_the_all_layer_pass_on_the_cpu(tiny_pabee_dir, tiny_texts) -> None:
    """The comparison the GPU tests make across devices, here between the two inference paths of one device."""
    from robustness.models.batching import encode
    from robustness.models.pabee import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    batch = encode(tokenizer, tiny_texts, 32)
    layer_logits = model.all_layer_logits(**batch)
    for setting in ("patience:1", "entropy:0.6", "maxprob:0.7", "full"):
        out = model.early_exit(**batch, setting=setting)
        result = compare_evaluations(layer_logits, layer_logits, setting, b_exit=out.exit_layer,
                                     b_pred=out.logits.argmax(-1))
        assert result.same, (setting, result.disagreements)
