"""Thresholds for the entropy and max-probability exit policies that match a target clean layer speed-up.

Policies are compared at equal clean speed-up (L / mean exit layer), measured on clean validation logits
``[L, N, C]``. The mean exit layer is monotone in the threshold (a larger entropy threshold exits earlier, a
larger max-probability threshold later), and only changes where the threshold crosses one of the N·L observed
values, so a binary search over the gaps between the sorted observed values finds the gap whose speed-up is
closest to the target. The threshold is the shortest decimal inside that gap, so float noise cannot move an
exit and the setting's label stays readable (``entropy:0.35``).

:func:`write_calibration` records each calibration (threshold, speed-up, accuracy, the data it was measured on)
in ``<model>/calibration.json``, where a suite finds it again (``calibrated = ["entropy@patience:2"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from robustness.schema.settings import (
    CALIBRATION_FILE,
    THRESHOLD_POLICIES,
    Setting,
    calibrated_setting,
    read_calibration,
)

__all__ = ["CALIBRATION_FILE", "THRESHOLD_POLICIES", "calibrated_setting", "match_threshold", "read_calibration",
           "write_calibration"]


def _statistic(layer_logits: torch.Tensor, policy: str) -> torch.Tensor:
    log_probs = layer_logits.float().log_softmax(dim=-1)
    if policy == "entropy":
        return -(log_probs.exp() * log_probs).sum(dim=-1)
    return log_probs.exp().max(dim=-1).values


def _inside(low: float, high: float) -> float:
    """The shortest decimal strictly between ``low`` and ``high`` once rounded to float32 (the precision the
    exit rules compare in), else their midpoint."""
    middle = (low + high) / 2
    for digits in range(1, 9):
        value = round(middle, digits)
        if low < torch.tensor(value, dtype=torch.float32).item() < high:
            return value
    return middle


def match_threshold(model: Any, layer_logits: torch.Tensor, policy: str, target_speedup: float) -> Setting:
    """The ``policy`` setting (entropy or maxprob) whose clean layer speed-up on ``layer_logits`` ([L, N, C], a
    PABEE model's) is closest to ``target_speedup``; ties go to the more conservative (slower) threshold."""
    if policy not in THRESHOLD_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(THRESHOLD_POLICIES)}, got {policy!r}")
    if model.head != "pabee":
        raise ValueError("thresholds need a multi-exit (pabee) model")
    if not target_speedup >= 1:
        raise ValueError(f"a layer speed-up is >= 1, got {target_speedup}")
    values = torch.unique(_statistic(layer_logits, policy)).tolist()  # sorted ascending
    edges = [values[0] - 1.0, *values, values[-1] + 1.0]
    if policy == "maxprob":
        edges = [max(0.0, e) if i == 0 else min(1.0, e) if i == len(edges) - 1 else e for i, e in enumerate(edges)]
    gaps = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1) if edges[i] < edges[i + 1]]

    def setting(k: int) -> Setting:
        low, high = gaps[k]
        value = low if low == high else _inside(low, high)
        return Setting(policy, max(value, 0.0))

    def speedup(k: int) -> float:
        exit_layer, _ = model.exit_from_layer_logits(layer_logits, setting(k))
        return model.num_layers / exit_layer.float().mean().item()

    # entropy: speed-up grows with the threshold; maxprob: it shrinks. Search k in the increasing direction.
    order = list(range(len(gaps))) if policy == "entropy" else list(reversed(range(len(gaps))))
    lo, hi = 0, len(order) - 1
    while lo < hi:  # first position whose speed-up reaches the target
        mid = (lo + hi) // 2
        if speedup(order[mid]) >= target_speedup:
            hi = mid
        else:
            lo = mid + 1
    candidates = [order[lo]] + ([order[lo - 1]] if lo > 0 else [])
    return setting(min(candidates, key=lambda k: (abs(speedup(k) - target_speedup), speedup(k))))


def write_calibration(model_dir: str | Path, entries: Sequence[dict[str, Any]]) -> Path:
    """Merge ``entries`` (each with a ``reference`` such as ``entropy@patience:2``) into the model's
    calibration.json, written atomically; returns its path."""
    from robustness.provenance import write_json_atomic

    path = Path(model_dir) / CALIBRATION_FILE
    merged = {**read_calibration(model_dir), **{e["reference"]: dict(e) for e in entries}}
    write_json_atomic(path, merged)
    return path
