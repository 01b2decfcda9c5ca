"""Exit policies as pure functions on all-layer logits.

Every policy takes ``layer_logits`` of shape ``[L, B, C]`` (layer 1 first) and decides an exit layer
*per example*; no decision ever looks at another example of the batch. Layers are numbered ``1..L``.

* :func:`patience_exit` -- PABEE (Zhou et al. 2020). counter = 0; for i = 2..L: counter += 1 if
  argmax_i == argmax_{i-1} else counter = 0; exit at the first i with counter == patience, else at L.
  The earliest exit is layer ``patience + 1``; ``patience >= L`` (or ``None``) means full depth.
* :func:`entropy_exit` -- DeeBERT (Xin et al. 2020): exit at the first layer whose prediction entropy
  is below ``threshold``, else at L.
* :func:`max_prob_exit` -- exit at the first layer whose max softmax probability is at least
  ``threshold``, else at L.
* :func:`setting_exit` -- the exit of any :class:`~robustness.models.settings.Setting` (re-exported here).
* :func:`reference_batch_patience_exit` -- the PABEE reference code's rule, which only stops when the
  counters of *all* examples in the batch reached ``patience`` (``torch.all``). Kept only to measure
  it in benchmarks: its result depends on the batch neighbours.
"""

from __future__ import annotations

from typing import Any

import torch

from robustness.models.settings import POLICIES, Setting, _check_patience, parse_setting

__all__ = [
    "POLICIES",
    "Setting",
    "confident",
    "entropy_exit",
    "gather_exit_logits",
    "max_prob_exit",
    "parse_setting",
    "patience_counters",
    "patience_exit",
    "reference_batch_patience_exit",
    "setting_exit",
]


def confident(logits: torch.Tensor, setting: Setting) -> torch.Tensor:
    """Per example ``[...]`` of logits ``[..., C]``: does a threshold policy exit at this layer? Entropy
    (nats, float32) < T, or max softmax probability >= T. Shared by the all-layer and the early-exit path."""
    if setting.policy == "entropy":
        log_probs = logits.float().log_softmax(dim=-1)
        return -(log_probs.exp() * log_probs).sum(dim=-1) < setting.value
    if setting.policy == "maxprob":
        return logits.float().softmax(dim=-1).max(dim=-1).values >= setting.value
    raise ValueError(f"setting {setting.label} is not a threshold policy")


def _check_layer_logits(layer_logits: torch.Tensor) -> None:
    if layer_logits.dim() != 3:
        raise ValueError(f"layer_logits must be [L, B, C], got shape {tuple(layer_logits.shape)}")
    if layer_logits.shape[0] < 1:
        raise ValueError("layer_logits needs at least one layer")


def gather_exit_logits(layer_logits: torch.Tensor, exit_layer: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, C]`` of each example's exit layer (``exit_layer`` numbered 1..L)."""
    index = (exit_layer - 1).view(1, -1, 1).expand(1, -1, layer_logits.shape[-1])
    return layer_logits.gather(0, index).squeeze(0)


def patience_counters(preds: torch.Tensor) -> torch.Tensor:
    """PABEE counters ``[L, B]`` from per-layer predictions ``[L, B]``: counter[0] = 0 and
    counter[i] = counter[i-1] + 1 if preds[i] == preds[i-1] else 0."""
    counters = torch.zeros_like(preds)
    for i in range(1, preds.shape[0]):
        counters[i] = torch.where(preds[i] == preds[i - 1], counters[i - 1] + 1, torch.zeros_like(preds[i]))
    return counters


def _first_true_or_last(hit: torch.Tensor) -> torch.Tensor:
    """Per column of a boolean ``[L, B]``, the 1-based index of the first True row, else L."""
    num_layers = hit.shape[0]
    layer_numbers = torch.arange(1, num_layers + 1, device=hit.device).unsqueeze(1).expand_as(hit)
    sentinel = torch.full_like(layer_numbers, num_layers)
    return torch.where(hit, layer_numbers, sentinel).min(dim=0).values


def patience_exit(layer_logits: torch.Tensor, patience: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """PABEE exit for every example: returns ``(exit_layer [B] long, logits [B, C])``."""
    _check_layer_logits(layer_logits)
    _check_patience(patience)
    num_layers = layer_logits.shape[0]
    if patience is None or patience >= num_layers:
        exit_layer = torch.full((layer_logits.shape[1],), num_layers, dtype=torch.long, device=layer_logits.device)
    else:
        counters = patience_counters(layer_logits.argmax(dim=-1))
        exit_layer = _first_true_or_last(counters == patience).long()
    return exit_layer, gather_exit_logits(layer_logits, exit_layer)


def entropy_exit(layer_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DeeBERT exit: first layer with entropy (nats) < ``threshold``; returns ``(exit_layer, logits)``."""
    return setting_exit(layer_logits, Setting("entropy", threshold))


def max_prob_exit(layer_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exit at the first layer whose max softmax probability >= ``threshold``; ``(exit_layer, logits)``."""
    return setting_exit(layer_logits, Setting("maxprob", threshold))


def setting_exit(layer_logits: torch.Tensor, setting: Setting | Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(exit_layer [B], logits [B, C])`` of any setting (see :func:`parse_setting`)."""
    setting = parse_setting(setting)
    if setting.policy in ("patience", "full"):
        return patience_exit(layer_logits, setting.value)  # type: ignore[arg-type]
    _check_layer_logits(layer_logits)
    exit_layer = _first_true_or_last(confident(layer_logits, setting)).long()
    return exit_layer, gather_exit_logits(layer_logits, exit_layer)


def reference_batch_patience_exit(layer_logits: torch.Tensor, patience: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference implementation's batch-coupled rule (``modeling_pabee_bert.py``): one counter for
    the whole batch, incremented when *all* examples keep their prediction (``torch.all``) and reset
    otherwise; every example exits at the first layer where it equals ``patience`` and takes that layer's
    logits. For benchmarks only -- an example's result depends on its batch neighbours."""
    _check_layer_logits(layer_logits)
    _check_patience(patience)
    num_layers, batch = layer_logits.shape[:2]
    preds = layer_logits.argmax(dim=-1)
    stop, counter = num_layers, 0
    for i in range(1, num_layers):
        counter = counter + 1 if bool((preds[i] == preds[i - 1]).all()) else 0
        if counter == patience:
            stop = i + 1
            break
    exit_layer = torch.full((batch,), stop, dtype=torch.long, device=layer_logits.device)
    return exit_layer, gather_exit_logits(layer_logits, exit_layer)
