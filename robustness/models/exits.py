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
* :func:`setting_exit` -- the exit of any :class:`~robustness.schema.settings.Setting` (re-exported here).
* :func:`prefix_exit` -- the same rule when only each example's first ``depth`` layers are known: the exit
  if those layers already decide it, else 0 (the lazy encoder computes deeper only then).
* :func:`reference_batch_patience_exit` -- the PABEE reference code's rule, which only stops when the
  counters of *all* examples in the batch reached ``patience`` (``torch.all``). Kept only to measure
  it in benchmarks: its result depends on the batch neighbours.
"""

from __future__ import annotations

from typing import Any

import torch

from robustness.schema.settings import POLICIES, Setting, _check_patience, parse_setting

__all__ = [
    "POLICIES",
    "Setting",
    "confident",
    "entropy_exit",
    "exit_step",
    "gather_exit_logits",
    "max_prob_exit",
    "parse_setting",
    "patience_counters",
    "patience_exit",
    "prefix_exit",
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
    counter[i] = counter[i-1] + 1 if preds[i] == preds[i-1] else 0, i.e. i minus the layer where the current
    run of equal predictions began (vectorised with a running maximum)."""
    layers = torch.arange(preds.shape[0], device=preds.device).view(-1, *[1] * (preds.dim() - 1)).expand_as(preds)
    same = torch.zeros_like(preds, dtype=torch.bool)
    same[1:] = preds[1:] == preds[:-1]
    run_start = torch.where(same, torch.zeros_like(layers), layers).cummax(dim=0).values
    return (layers - run_start).to(preds.dtype)


def exit_step(setting: Setting, layer: int, num_layers: int, logits: torch.Tensor, prev_pred: torch.Tensor,
              counter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The exit rule one layer at a time, for encoders that step: ``(fired [B], pred [B], counter [B])`` at
    layer ``layer`` (1..L) from its ``logits`` ``[B, C]``, the previous layer's predictions (-1 before layer 1)
    and PABEE counters. ``fired`` is True where the example exits here (always at layer L)."""
    pred = logits.argmax(dim=-1)
    counter = torch.where(pred == prev_pred, counter + 1, torch.zeros_like(counter))
    if layer >= num_layers:
        fired = torch.ones_like(pred, dtype=torch.bool)
    elif setting.policy in ("entropy", "maxprob"):
        fired = confident(logits, setting)
    elif setting.policy == "patience" and setting.value < num_layers:
        fired = counter == setting.value
    else:
        fired = torch.zeros_like(pred, dtype=torch.bool)
    return fired, pred, counter


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


def prefix_exit(layer_logits: torch.Tensor, depth: torch.Tensor, setting: Setting | Any
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(exit_layer [B], logits [B, C])`` of ``setting`` when only the first ``depth[b]`` of the L rows of
    ``layer_logits`` ``[L, B, C]`` are known for example ``b`` (the rows beyond are ignored, whatever they hold).
    The exit is decided when the rule fires at a known layer, or when all L layers are known; otherwise
    ``exit_layer`` is 0 (its logits row is then meaningless). A decided exit equals :func:`setting_exit` on the
    complete logits, because the rule at layer i reads layers 1..i only."""
    setting = parse_setting(setting)
    _check_layer_logits(layer_logits)
    num_layers = layer_logits.shape[0]
    rows = torch.arange(num_layers, device=layer_logits.device).unsqueeze(1)
    known = rows < depth.to(layer_logits.device).unsqueeze(0)
    if setting.policy in ("patience", "full"):
        patience = setting.value
        if patience is None or patience >= num_layers:
            fired = torch.zeros_like(known)
        else:
            fired = patience_counters(layer_logits.argmax(dim=-1)) == patience
    else:
        fired = confident(layer_logits, setting)
    first = torch.where(fired & known, rows + 1, torch.full_like(rows, num_layers + 1)).min(dim=0).values
    complete = depth.to(layer_logits.device) >= num_layers
    exit_layer = torch.where(first <= num_layers, first,
                             torch.where(complete, torch.full_like(first, num_layers), torch.zeros_like(first)))
    return exit_layer.long(), gather_exit_logits(layer_logits, exit_layer.clamp(min=1).long())


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
