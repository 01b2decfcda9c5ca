"""Metrics of exit layers and per-layer predictions, as pure functions on lists / arrays (re-exported by
:mod:`robustness.analysis.metrics`, whose notation they share): exit distribution, efficacy, the slowdown
metrics over final exits, overthinking, the exit vs the last layer, and per-layer flip rates.

Layers are numbered 1..L; an undefined rate (no examples, single-head model) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

NAN = float("nan")


def _exits(exits: Sequence[int], num_layers: int) -> np.ndarray:
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    array = np.asarray(exits, dtype=float)
    if array.size and (array.min() < 1 or array.max() > num_layers):
        raise ValueError(f"exit layers must lie in 1..{num_layers}")
    return array


def mean_exit_layer(exits: Sequence[int]) -> float:
    """Mean exit layer (layers numbered 1..L)."""
    return float(np.mean(exits)) if len(exits) else NAN


def exit_distribution(exits: Sequence[int], num_layers: int) -> np.ndarray:
    """Fraction of examples exiting at each layer 1..L (length-L array; zeros when ``exits`` is empty)."""
    array = _exits(exits, num_layers).astype(int)
    counts = np.bincount(array, minlength=num_layers + 1)[1:]
    return counts / array.size if array.size else counts.astype(float)


def efficacy(exits: Sequence[int], num_layers: int) -> float:
    """Efficacy (DeepSloth / WAFFLE) = normalised area under the CDF of exit layers:

        efficacy = 1/(L−1) · Σ_{l=1}^{L−1} F(l),   F(l) = fraction of examples exiting at a layer ≤ l.

    All exits at L give 0, all at layer 1 give 1; it equals (L − mean exit)/(L − 1). NaN when L = 1 or
    there are no exits. A slowdown attack lowers it. WAFFLE's code (``attack_exit.efficacy``) integrates the
    CDF over L + 1 points (a zero for "layer 0", then F(1)..F(L)) with the trapezoid rule on x = 1/(L+1)..1,
    which gives ((L − 1)·efficacy + 1/2) / (L + 1): 1/(2(L + 1)) rather than 0 when every exit is at L."""
    array = _exits(exits, num_layers)
    if num_layers < 2 or not array.size:
        return NAN
    return float(np.mean([np.mean(array <= layer) for layer in range(1, num_layers)]))


# --- slowdown (efficiency) ------------------------------------------------------------------------------------
# Over all n examples, an example's *final* exit is its adversarial text's exit when it was attacked and its
# clean exit when it was skipped (already at the target, or already misclassified by an accuracy attack).


def final_exits(orig_exits: Sequence[int], adv_exits: Sequence[int | None]) -> np.ndarray:
    """Per example: ``adv_exit`` where the example was attacked (not None/NaN), else ``orig_exit``."""
    adv = np.asarray([np.nan if a is None else a for a in adv_exits], dtype=float)
    return np.where(np.isnan(adv), np.asarray(orig_exits, dtype=float), adv)


def slowdown_success_rate(adv_exits: Sequence[int | None], target: int) -> float:
    """WAFFLE's slowdown success rate: the share of attacked examples (``adv_exit`` not None) whose
    adversarial exit layer reaches ``target`` (≥ target). NaN when none was attacked."""
    attacked = [a for a in adv_exits if a is not None and not (isinstance(a, float) and math.isnan(a))]
    return float(np.mean(np.asarray(attacked) >= target)) if attacked else NAN


def mean_exit_increase(orig_exits: Sequence[int], adv_exits: Sequence[int | None]) -> float:
    """Mean over all n examples of (final exit − clean exit); skipped examples add 0."""
    finals = final_exits(orig_exits, adv_exits)
    return float(np.mean(finals - np.asarray(orig_exits, dtype=float))) if finals.size else NAN


def accuracy_at_exit(orig_preds: Sequence[int], adv_preds: Sequence[int | None], labels: Sequence[int]) -> float:
    """Accuracy of the prediction at the actual exit over all n examples: the adversarial text's prediction
    where the example was attacked, else the clean prediction (a pure slowdown keeps it)."""
    finals = final_exits(orig_preds, adv_preds)
    return float(np.mean(finals == np.asarray(labels, dtype=float))) if finals.size else NAN


def _layer_matrix(layer_preds: Sequence[Sequence[int]]) -> np.ndarray | None:
    """``[n, L]`` int matrix, or None for single-head predictions (L = 1)."""
    lengths = {len(p) for p in layer_preds}
    if len(lengths) > 1:
        raise ValueError(f"layer prediction lists differ in length: {sorted(lengths)}")
    if not layer_preds or lengths == {1}:
        return None
    return np.asarray(layer_preds, dtype=int)


class Overthinking(NamedTuple):
    destructive: float  #: share of all examples
    destructive_of_wrong: float  #: share of the examples the last layer misclassifies
    wasteful: float  #: share of all examples


def overthinking(layer_preds: Sequence[Sequence[int]], labels: Sequence[int]) -> Overthinking:
    """Overthinking (Kaya et al. 2019, Shallow-Deep Networks) from per-layer predictions ŷ_1..ŷ_L and labels y,
    as their ``overthinking_experiments.py`` computes it:

    * destructive: ŷ_L ≠ y but some internal classifier i < L has ŷ_i = y (the union over i of
      ``layer_correct[i] & end_wrong``), as a share of all examples and of the misclassified ones
      (``end_wrong``; the paper's "50% of misclassifications");
    * wasteful: the earliest layer with ŷ_k = y is k < L (their ``unique_correct`` at an internal
      classifier), whether or not later layers stay correct.

    Where we differ: Kaya et al. read the last layer as the network's answer; so do we, whatever the exit
    policy (the exit prediction is in :func:`exit_vs_last_layer`). NaN for single-head models (L = 1), no
    examples, or (``destructive_of_wrong``) no misclassified example."""
    if len(layer_preds) != len(labels):
        raise ValueError("layer_preds and labels differ in length")
    matrix = _layer_matrix(layer_preds)
    if matrix is None:
        return Overthinking(NAN, NAN, NAN)
    correct = matrix == np.asarray(labels, dtype=int)[:, None]
    end_wrong = ~correct[:, -1]
    destructive = correct[:, :-1].any(axis=1) & end_wrong
    wasteful = correct[:, :-1].any(axis=1)  # the first correct layer is an internal one
    of_wrong = float(destructive.sum() / end_wrong.sum()) if end_wrong.any() else NAN
    return Overthinking(float(destructive.mean()), of_wrong, float(wasteful.mean()))


def exit_vs_last_layer(
    adv_layer_preds: Sequence[Sequence[int]], adv_preds: Sequence[int], labels: Sequence[int]
) -> tuple[float, float]:
    """``(rescued, hurt)`` over attacked examples, from the adversarial texts:

    * rescued = last layer ŷ_L ≠ y but the exit prediction (``adv_pred``) = y: early exit saved it;
    * hurt = ŷ_L = y but the exit prediction ≠ y: the attack only works because of the early exit.

    NaN for single-head models or no examples."""
    if not len(adv_layer_preds) == len(adv_preds) == len(labels):
        raise ValueError("adv_layer_preds, adv_preds and labels differ in length")
    matrix = _layer_matrix(adv_layer_preds)
    if matrix is None:
        return NAN, NAN
    y = np.asarray(labels, dtype=int)
    last_right, exit_right = matrix[:, -1] == y, np.asarray(adv_preds, dtype=int) == y
    return float((~last_right & exit_right).mean()), float((last_right & ~exit_right).mean())


def flip_rates(orig_layer_preds: Sequence[Sequence[int]], adv_layer_preds: Sequence[Sequence[int]]) -> np.ndarray:
    """Per layer l, the fraction of examples whose layer-l prediction on the adversarial text differs from
    layer l's prediction on the original text (length-L array; empty when there are no examples)."""
    if len(orig_layer_preds) != len(adv_layer_preds):
        raise ValueError("orig_layer_preds and adv_layer_preds differ in length")
    if not len(orig_layer_preds):
        return np.zeros(0)
    orig, adv = np.asarray(orig_layer_preds, dtype=int), np.asarray(adv_layer_preds, dtype=int)
    if orig.ndim != 2 or orig.shape != adv.shape:
        raise ValueError("orig and adv layer predictions must be [n, L] with the same L")
    return (orig != adv).mean(axis=0)
