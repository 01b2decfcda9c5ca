"""Which recipes the offline resources make runnable (``robustness doctor``): each recipe's needs
(:data:`~robustness.attack.recipes.RECIPES`) against what :func:`robustness.resources.doctor.doctor` finds."""

from __future__ import annotations

import os
from dataclasses import dataclass

from robustness.attack.recipes import RECIPES
from robustness.resources.doctor import doctor

__all__ = ["RecipeStatus", "recipe_availability"]


@dataclass(frozen=True)
class RecipeStatus:
    name: str
    runnable: bool
    reason: str


def recipe_availability(
    nltk_data: str | os.PathLike[str] | None = None,
    lexicons_dir: str | os.PathLike[str] | None = None,
    mlm: str | os.PathLike[str] | None = None,
) -> list[RecipeStatus]:
    """For each registered recipe: runnable offline with these resources, and why not."""
    status = {s.name: s for s in doctor(nltk_data, lexicons_dir, mlm)}
    out = []
    for name, info in RECIPES.items():
        lacking = sorted(n for n in info.needs | {"textattack"} if not status[n].available)
        reason = "ok" if not lacking else "; ".join(f"{n}: {status[n].detail}" for n in lacking)
        out.append(RecipeStatus(name, not lacking, reason))
    return out
