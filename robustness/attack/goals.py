"""Slowdown (efficiency) attacks as a TextAttack goal function: push each text's exit layer deeper.

WAFFLE (Coalson et al. 2023) and SAME (Chen et al. 2023) attack early-exit models by making internal
classifiers less decisive, so that the exit rule fires late or never. :class:`SlowdownGoalFunction` does the
same with any recipe's transformation, constraints and search (composed in
:func:`robustness.attack.recipes.build_attack`), from the black-box view of the all-layer logits.

**Score** of a text ``x`` at an exit setting, with ``e`` its exit layer (1..L) and ``c ∈ [0, 1]`` how close the
exit decision at ``e`` is to not firing::

    score(x) = (e − 1 + c) / L        ∈ [0, 1]

so a deeper exit always scores higher, and within one exit layer greedy search can climb ``c``:

* ``patience:P`` -- the counter fired at ``e`` because layers ``e−P..e`` agree on a class ``k``; with ``m`` the
  smallest logit margin ``z_j[k] − max_{k'≠k} z_j[k']`` over those P + 1 layers, ``c = 1 / (1 + m)``: a small
  margin means one flip away from resetting the counter.
* ``entropy:T`` -- ``c = H_e / T`` (the exit layer's entropy, in nats, is below ``T``; ``c → 1`` at the threshold).
* ``maxprob:T`` -- ``c = (1 − p_e) / (1 − T)`` with ``p_e ≥ T`` the exit layer's max probability (``c = 1`` if T = 1).
* When the rule never fired (every example that reaches layer L this way) or the setting is ``full`` or the
  model has one head, ``c = 1``: the score is 1.

**Other scores** (``--slowdown-score``; the goal below is the same for all, only the search guidance differs),
from the softmax ``p_l`` of every internal classifier l = 1..H (H = L, or 1 for a single head), C classes:

* ``waffle`` -- WAFFLE's objective (Coalson et al. 2023, "ours"; ``_get_ours_score`` in its code): push every
  internal classifier toward the uniform distribution ``u``::

      score(x) = 1/H · Σ_l (1 − ‖p_l − u‖₁ / (C − 1))

  exactly as WAFFLE computes it, so scores (and the genetic searches that sample in proportion to them) are
  comparable with its numbers. Each term is 1 at uniform; at a one-hot ``p_l`` it is 1 − 2/C (0 for C = 2, the
  largest ‖p − u‖₁ being 2(C − 1)/C), so for C > 2 the score lives in [1 − 2/C, 1]. Like WAFFLE, every
  classifier counts, before and after the exit.
* ``oavg`` -- WAFFLE's "oavg" baseline: ``1/H · Σ_l (1 − p_l[y])`` with ``y`` the gold label (push every
  internal classifier away from the right answer).

**Goal**: the exit layer reaches ``target`` (default L). With ``keep_prediction`` (a pure slowdown) the exit
prediction must also stay the original text's; a text that changes it scores −1 and never completes the goal.
Texts that already exit at or after the target are skipped (TextAttack semantics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robustness.models.exits import confident, patience_counters, setting_exit
from robustness.resources.textattack_compat import import_textattack
from robustness.schema.settings import Setting, parse_setting
from robustness.schema.specs import check_goal

__all__ = ["SlowdownGoalFunction", "oavg_score", "slowdown_score", "waffle_score"]


def _closeness(layer_logits: torch.Tensor, setting: Setting, exit_layer: int) -> float:
    """``c`` of the module docstring for one text's logits ``[L, C]`` exiting at ``exit_layer``."""
    num_layers = layer_logits.shape[0]
    at_exit = layer_logits[exit_layer - 1].float()
    if setting.policy == "patience" and setting.value < num_layers:
        preds = layer_logits.argmax(dim=-1)
        if int(patience_counters(preds.unsqueeze(1))[exit_layer - 1, 0]) != setting.value:
            return 1.0  # ran out of layers
        run = layer_logits[exit_layer - 1 - setting.value : exit_layer].float()  # the P + 1 agreeing layers
        winner = int(preds[exit_layer - 1])
        others = torch.cat([run[:, :winner], run[:, winner + 1 :]], dim=1).max(dim=1).values
        return 1.0 / (1.0 + float((run[:, winner] - others).min()))
    if setting.policy in ("entropy", "maxprob"):
        if not bool(confident(at_exit, setting)):
            return 1.0  # no layer was confident enough
        probs = at_exit.softmax(dim=-1)
        if setting.policy == "entropy":
            entropy = float(-(probs * probs.log()).sum())
            return entropy / setting.value if setting.value > 0 else 1.0
        return float((1.0 - probs.max()) / (1.0 - setting.value)) if setting.value < 1 else 1.0
    return 1.0


def slowdown_score(layer_logits: torch.Tensor | np.ndarray, setting: Any, num_layers: int | None = None
                   ) -> tuple[int, float]:
    """``(exit_layer, score)`` of one text from its per-layer logits ``[H, C]`` (see the module docstring).
    ``num_layers`` is L when the model has a single head (H = 1: full depth, score 1)."""
    logits = torch.as_tensor(np.asarray(layer_logits))
    setting = parse_setting(setting)
    num_layers = num_layers or logits.shape[0]
    if logits.shape[0] == 1 and num_layers > 1:
        return num_layers, 1.0
    exit_layer = int(setting_exit(logits.unsqueeze(1), setting)[0][0])
    score = (exit_layer - 1 + _closeness(logits, setting, exit_layer)) / num_layers
    return exit_layer, min(max(score, 0.0), 1.0)


def _probabilities(layer_logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Softmax ``[H, C]`` (float64) of per-layer logits ``[H, C]``; ``ValueError`` unless C >= 2."""
    logits = np.asarray(layer_logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(f"slowdown scores need per-layer logits [layers, classes >= 2], got shape {logits.shape}")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def waffle_score(layer_logits: torch.Tensor | np.ndarray) -> float:
    """WAFFLE's slowdown score of one text from its per-layer logits ``[H, C]``: the mean over the H internal
    classifiers of ``1 − ‖p_l − u‖₁ / (C − 1)`` (1: every classifier uniform; 1 − 2/C: every one one-hot)."""
    probs = _probabilities(layer_logits)
    classes = probs.shape[1]
    distance = np.abs(probs - 1.0 / classes).sum(axis=1)
    return float((1.0 - distance / (classes - 1)).mean())


def oavg_score(layer_logits: torch.Tensor | np.ndarray, label: int) -> float:
    """WAFFLE's ``oavg`` score of one text: the mean over the H internal classifiers of ``1 − p_l[label]``."""
    probs = _probabilities(layer_logits)
    if not 0 <= int(label) < probs.shape[1]:
        raise ValueError(f"label {label} is not one of the model's {probs.shape[1]} classes")
    return float((1.0 - probs[:, int(label)]).mean())


ClassificationGoalFunction = import_textattack().goal_functions.ClassificationGoalFunction


class SlowdownGoalFunction(ClassificationGoalFunction):
    """TextAttack goal: exit at layer ``target`` or later (default L) under the wrapper's exit setting.

    ``model_wrapper`` is a :class:`~robustness.attack.wrapper.PabeeModelWrapper`; the exit and the score
    come from its logits of every layer (the score reads them all: a scored text runs all L layers, once).
    ``score`` picks the search guidance (``exit``, ``waffle`` or ``oavg``, module docstring); the goal is the
    same for all. Other arguments are TextAttack's ``GoalFunction`` options."""

    def __init__(self, model_wrapper: Any, target: int | None = None, keep_prediction: bool = False,
                 score: str = "exit", **kwargs: Any) -> None:
        super().__init__(model_wrapper, **kwargs)
        num_layers = int(model_wrapper.num_layers)
        check_goal("slowdown", target, keep_prediction, score)
        self.score = score
        if target is not None and target > num_layers:
            raise ValueError(f"slowdown target {target} is deeper than the model's {num_layers} layers")
        self.target = num_layers if target is None else target
        self.keep_prediction = keep_prediction
        self._original_pred: int | None = None

    def init_attack_example(self, attacked_text: Any, ground_truth_output: Any) -> Any:
        self._original_pred = int(np.argmax(self.model([attacked_text.tokenizer_input])[0]))
        return super().init_attack_example(attacked_text, ground_truth_output)

    def _exit_and_score(self, model_output: Any, attacked_text: Any) -> tuple[int, float, bool]:
        layer_logits = self.model.layer_logits([attacked_text.tokenizer_input])[:, 0]
        exit_layer, score = slowdown_score(layer_logits, self.model.setting, self.model.num_layers)
        if self.score == "waffle":
            score = waffle_score(layer_logits)
        elif self.score == "oavg":
            score = oavg_score(layer_logits, self.ground_truth_output)
        kept = not self.keep_prediction or int(model_output.argmax()) == self._original_pred
        return exit_layer, score, kept

    def _is_goal_complete(self, model_output: Any, attacked_text: Any) -> bool:
        exit_layer, _, kept = self._exit_and_score(model_output, attacked_text)
        return kept and exit_layer >= self.target

    def _get_score(self, model_output: Any, attacked_text: Any) -> float:
        _, score, kept = self._exit_and_score(model_output, attacked_text)
        return score if kept else -1.0

    def extra_repr_keys(self) -> list[str]:
        return ["target", "keep_prediction", "score"]
