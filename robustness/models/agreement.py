"""What "the same result" means across devices: two evaluations of the same texts by the same weights (say on the
CPU and on a GPU, both fp32) agree when their exits and predictions are equal, except where the logits are
within float rounding of a tie.

Float rounding differs between devices (other summation orders in the matrix products), so each logit of one
run may differ from the other run's by some small ε. Then:

* a **prediction** (argmax of a layer's logits) may differ only between two classes ``p``, ``q`` whose logits are
  within ``tol = 2ε`` of each other in *both* runs: ``z[p] − z[q]`` changes sign, and it moves by at most 2ε;
* an **exit** may differ only if the exit rule's per-layer decision first diverges at a near-tie. The rule reads
  each layer in turn, so everything after the first layer where the two runs' decisions differ may differ; only
  that first divergence needs explaining. Patience reads the argmax (a near-tie as above); entropy and
  max-probability read a statistic of the softmax, which moves by at most ``2 ln(C) · ε`` (entropy: the
  gradient's ℓ1 norm is at most 2H ≤ 2 ln C) and ``ε / 2`` (max probability: ``Σ_i |∂p_k/∂z_i| = 2 p_k (1 − p_k)
  ≤ 1/2``), so a threshold decision may differ only where the statistic lies that close to the threshold in
  both runs.
* the **exit prediction** may differ where the exits differ (explained as above) or, at the same exit, where
  that layer's logits are near a tie.

:data:`LOGIT_TOL` = 1e-4 is ``2ε`` for ε = 5e-5: fp32 keeps about 7 significant digits, and an encoder of 6 to
12 layers with hidden size 384 to 768 accumulates relative errors of about 1e-6 to 1e-5 on logits that stay
below 10 in magnitude. :class:`Agreement` reports the largest logit difference it saw (``max_logit_diff``), so
every comparison checks that assumption too (``within_tol``). GPU numbers are not measured yet: see
``tests/gpu/`` and ``scripts/bench_gpu.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from robustness.models.exits import confident, setting_exit
from robustness.models.settings import Setting, parse_setting

__all__ = ["LOGIT_TOL", "Agreement", "Disagreement", "compare_evaluations", "near_tie"]

#: Default tolerance on a logit difference (2ε, see the module docstring).
LOGIT_TOL = 1e-4


@dataclass(frozen=True)
class Disagreement:
    """One example whose ``kind`` (``"exit"``, ``"prediction"``) differs: ``a`` and ``b`` are the two values, ``layer``
    the (1-based) layer whose near-tie explains it, or where the runs first diverge when nothing does."""

    example: int
    kind: str
    a: int
    b: int
    layer: int
    explained: bool
    reason: str


@dataclass
class Agreement:
    """The comparison of two evaluations of ``n`` texts at one setting."""

    n: int
    setting: str
    tol: float
    max_logit_diff: float  # largest |z_a − z_b| over the layers both runs computed
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Disagreement]:
        return [d for d in self.disagreements if not d.explained]

    @property
    def within_tol(self) -> bool:
        """Did the logits themselves stay within the rounding the tolerance assumes (``max_logit_diff ≤ tol / 2``)?"""
        return self.max_logit_diff <= self.tol / 2

    @property
    def same(self) -> bool:
        """The same result: every disagreement is explained by a near-tie, and the logits are within tolerance."""
        return not self.unexplained and self.within_tol


def near_tie(logits: torch.Tensor, p: int, q: int, tol: float = LOGIT_TOL) -> bool:
    """Are classes ``p`` and ``q`` within ``tol`` of each other in ``logits`` ``[C]``?"""
    return abs(float(logits[p]) - float(logits[q])) <= tol


def _statistic(logits: torch.Tensor, setting: Setting) -> float:
    """The threshold policy's statistic of one layer's logits ``[C]``: entropy (nats) or max probability."""
    log_probs = logits.float().log_softmax(dim=-1)
    if setting.policy == "entropy":
        return float(-(log_probs.exp() * log_probs).sum())
    return float(log_probs.exp().max())


def _statistic_tol(setting: Setting, num_labels: int, tol: float) -> float:
    """How far the statistic may move when every logit moves by ``tol / 2`` (see the module docstring)."""
    eps = tol / 2
    return 2 * math.log(num_labels) * eps if setting.policy == "entropy" else eps / 2


def _decisions(layer_logits: torch.Tensor, setting: Setting) -> torch.Tensor:
    """What the exit rule reads at each layer ``[L, N]``: the argmax (patience, full) or the confident flag."""
    if setting.policy in ("entropy", "maxprob"):
        return confident(layer_logits, setting).long()
    return layer_logits.argmax(dim=-1)


def _explain_layer(a: torch.Tensor, b: torch.Tensor, setting: Setting, tol: float, rule: bool) -> tuple[bool, str]:
    """Is the divergence at one layer (logits ``[C]`` of each run) a near-tie? ``rule``: of the exit rule's
    decision (threshold policies read a statistic), else of the argmax."""
    if rule and setting.policy in ("entropy", "maxprob"):
        stat_tol = _statistic_tol(setting, a.shape[-1], tol)
        gaps = [abs(_statistic(x, setting) - float(setting.value)) for x in (a, b)]
        # on either side of the threshold and each within rounding of the other: both that close to it
        return max(gaps) <= stat_tol, f"{setting.policy} {max(gaps):.3g} from the threshold (tolerance {stat_tol:.3g})"
    p, q = int(a.argmax()), int(b.argmax())
    gaps = [abs(float(x[p]) - float(x[q])) for x in (a, b)]
    return max(gaps) <= tol, f"logits of classes {p} and {q} {max(gaps):.3g} apart (tolerance {tol:.3g})"


def compare_evaluations(a_logits: torch.Tensor, b_logits: torch.Tensor, setting: Setting | str | int | None, *,
                        a_exit: torch.Tensor | None = None, b_exit: torch.Tensor | None = None,
                        a_pred: torch.Tensor | None = None, b_pred: torch.Tensor | None = None,
                        tol: float = LOGIT_TOL) -> Agreement:
    """Compare two evaluations of the same ``N`` texts at ``setting``: per-layer logits ``[L, N, C]`` of each
    (all layers, e.g. :meth:`~robustness.models.pabee.PabeeModel.all_layer_logits`), and optionally the exits
    ``[N]`` and exit predictions ``[N]`` each run produced itself (e.g. by true early exit); missing ones are
    derived from its logits by the exit rule. Lists every example whose exit or prediction differs, and whether
    a near-tie within ``tol`` explains it (module docstring)."""
    setting = parse_setting(setting)
    a_logits, b_logits = a_logits.detach().float().cpu(), b_logits.detach().float().cpu()
    if a_logits.shape != b_logits.shape or a_logits.dim() != 3:
        raise ValueError(f"the two evaluations' logits must both be [L, N, C], got {tuple(a_logits.shape)} and "
                         f"{tuple(b_logits.shape)}")
    derived = [setting_exit(x, setting) for x in (a_logits, b_logits)]
    exits = [(e if e is not None else d[0]).detach().cpu().long() for e, d in zip((a_exit, b_exit), derived,
                                                                                    strict=True)]
    preds = [(p if p is not None else d[1].argmax(dim=-1)).detach().cpu().long() for p, d in
             zip((a_pred, b_pred), derived, strict=True)]
    decisions = [_decisions(x, setting) for x in (a_logits, b_logits)]  # patience: its counters follow the argmax
    out = Agreement(n=a_logits.shape[1], setting=setting.label, tol=tol,
                    max_logit_diff=float((a_logits - b_logits).abs().max()) if a_logits.numel() else 0.0)
    for i in range(a_logits.shape[1]):
        exit_a, exit_b = int(exits[0][i]), int(exits[1][i])
        if exit_a != exit_b:
            out.disagreements.append(_exit_disagreement(i, exit_a, exit_b, a_logits, b_logits, decisions, setting,
                                                        tol))
        pred_a, pred_b = int(preds[0][i]), int(preds[1][i])
        if pred_a != pred_b:
            if exit_a != exit_b:
                explained, reason = out.disagreements[-1].explained, "the exits differ"
                layer = out.disagreements[-1].layer
            else:
                layer = exit_a
                explained, reason = _explain_layer(a_logits[exit_a - 1, i], b_logits[exit_a - 1, i], setting, tol,
                                                   rule=False)
            out.disagreements.append(Disagreement(i, "prediction", pred_a, pred_b, layer, explained, reason))
    return out


def _exit_disagreement(i: int, exit_a: int, exit_b: int, a_logits: torch.Tensor, b_logits: torch.Tensor,
                       decisions: list[torch.Tensor], setting: Setting, tol: float) -> Disagreement:
    """Explain differing exits by the first layer (up to the deeper exit) where the rule's inputs diverge."""
    deepest = max(exit_a, exit_b)
    for layer in range(deepest):
        if not torch.equal(decisions[0][layer, i], decisions[1][layer, i]):
            explained, reason = _explain_layer(a_logits[layer, i], b_logits[layer, i], setting, tol, rule=True)
            return Disagreement(i, "exit", exit_a, exit_b, layer + 1, explained, reason)
    # the rule read the same thing at every layer, yet the exits differ: one run did not follow the rule
    return Disagreement(i, "exit", exit_a, exit_b, deepest, False, "the exit rule's inputs agree at every layer")
