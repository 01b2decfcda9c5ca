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
* :func:`reference_batch_patience_exit` -- the PABEE reference code's rule, which only stops when the
  counters of *all* examples in the batch reached ``patience`` (``torch.all``). Kept only to measure
  it in benchmarks: its result depends on the batch neighbours.
"""

from __future__ import annotations

import torch

__all__ = [
    "entropy_exit",
    "gather_exit_logits",
    "max_prob_exit",
    "patience_counters",
    "patience_exit",
    "reference_batch_patience_exit",
]


def _check_layer_logits(layer_logits: torch.Tensor) -> None:
    if layer_logits.dim() != 3:
        raise ValueError(f"layer_logits must be [L, B, C], got shape {tuple(layer_logits.shape)}")
    if layer_logits.shape[0] < 1:
        raise ValueError("layer_logits needs at least one layer")


def _check_patience(patience: int | None) -> None:
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be an integer >= 1 or None (full depth), got {patience!r}")


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
    _check_layer_logits(layer_logits)
    if threshold < 0:
        raise ValueError(f"entropy threshold must be >= 0, got {threshold}")
    log_probs = layer_logits.float().log_softmax(dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    exit_layer = _first_true_or_last(entropy < threshold).long()
    return exit_layer, gather_exit_logits(layer_logits, exit_layer)


def max_prob_exit(layer_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exit at the first layer whose max softmax probability >= ``threshold``; ``(exit_layer, logits)``."""
    _check_layer_logits(layer_logits)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"max-probability threshold must be in [0, 1], got {threshold}")
    confidence = layer_logits.float().softmax(dim=-1).max(dim=-1).values
    exit_layer = _first_true_or_last(confidence >= threshold).long()
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
