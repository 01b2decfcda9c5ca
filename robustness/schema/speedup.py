"""Speed-up and what a slowdown leaves of it: the two ratios every stage reports the same way (an attack stage such
as the universal trigger evaluates them, analysis tabulates them), defined once here, below both.
"""

from __future__ import annotations

import math

__all__ = ["efficiency_gain_left", "layer_speedup"]

NAN = float("nan")


def layer_speedup(num_layers: int, mean_exit: float) -> float:
    """Speed-up = L / mean exit layer (a ratio ≥ 1; the PABEE code's 1 − mean/L is the fraction saved)."""
    return num_layers / mean_exit if mean_exit and not math.isnan(mean_exit) else NAN


def efficiency_gain_left(num_layers: int, clean_mean_exit: float, adv_mean_exit: float) -> float:
    """Share of the clean early-exit saving that survives the attack:

        (L / mean adversarial exit − 1) / (L / mean clean exit − 1)

    1 = the attack cost nothing, 0 = every example runs all L layers (SAME's "efficiency reduced by 80%" is
    1 − this = 0.8). Means over all n examples (final exits for the adversarial side). NaN when the clean
    model saves nothing (mean clean exit = L)."""
    gain = layer_speedup(num_layers, clean_mean_exit) - 1
    if math.isnan(gain) or gain <= 0:
        return NAN
    return (layer_speedup(num_layers, adv_mean_exit) - 1) / gain
