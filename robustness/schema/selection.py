"""One consistent selection: the attack sample, the selection set, and the rule that picks the pre-registered
setting on the selection set (the contract between bench, which records them before any attack, and the verdict,
which judges eligibility on the same set).

* The suite's clean split is divided once: the **attack sample** (``n`` examples drawn with the suite's ``seed``,
  exactly as every run draws it) and the **selection set** -- the rest of that split, or all of a declared other
  split (``[suite] selection_split``). The two never share an example. bench records both lists of dataset
  indices, with the seed, in ``<out>/selection.json`` (:data:`SELECTION_FILE`) before any attack runs.
* Clean accuracy on the selection set (bench's ``clean/<model>.csv``) decides both the pre-registered setting
  and the verdict's eligibility, so a setting is never chosen on one set and judged on another.
* A **selection rule** (``[verdict] select``) is the alternative to a fixed ``[verdict] setting``; the rules are
  :data:`SELECTION_RULES`. ``smallest-patience-within-margin``: for each early-exit model and its full-depth
  baseline, the pre-registered setting is the smallest patience whose clean accuracy on the selection set is at
  least the baseline's minus ``margin`` (the verdict's non-inferiority margin: :func:`within_margin`, the one
  comparison its eligibility makes too; NaN never qualifies); None when no patience qualifies (the verdict then
  says ``no_eligible_setting``). Settings that are not patience settings never qualify. Degeneracy and
  ``min_n`` are still judged by the verdict.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from robustness.schema.settings import parse_setting

__all__ = ["MARGIN_TOLERANCE", "SELECTION_FILE", "SELECTION_RULES", "SelectionSplit", "check_rule", "divide",
           "pair_baselines", "select_setting", "selection_table", "within_margin"]

#: The file in a bench output that records the split and, with a rule, the setting it chose.
SELECTION_FILE = "selection.json"
#: The pre-registered selection rules ``[verdict] select`` accepts.
SELECTION_RULES = ("smallest-patience-within-margin",)
#: Clean accuracies are proportions of finitely many examples: a shortfall this small is float rounding (e.g.
#: ``0.545 - 0.05 == 0.49500000000000005``), so an accuracy exactly ``margin`` below the baseline qualifies.
MARGIN_TOLERANCE = 1e-9


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`SELECTION_RULES`, else ``ValueError``."""
    if rule not in SELECTION_RULES:
        raise ValueError(f"verdict select must be one of {', '.join(SELECTION_RULES)}, got {rule!r}")
    return rule


@dataclass(frozen=True)
class SelectionSplit:
    """The attack sample and the selection set, as dataset indices (each sorted) of their splits."""

    dataset: str
    split: str  # the attack sample's split
    n: int
    seed: int
    attack_sample: tuple[int, ...]
    selection_split: str
    selection_set: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.split == self.selection_split and set(self.attack_sample) & set(self.selection_set):
            raise ValueError(f"{self.dataset}/{self.split}: the selection set overlaps the attack sample")

    @property
    def digest(self) -> str:
        """A short hash of both index lists and their splits: equal digests, equal division."""
        content = [self.split, list(self.attack_sample), self.selection_split, list(self.selection_set)]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        """One line naming the selection set (what a clean table computed on it records)."""
        where = (f"outside the attack sample (n={self.n} seed={self.seed})" if self.selection_split == self.split
                 else f"(all; the attack sample is {self.split} n={self.n} seed={self.seed})")
        return f"{self.selection_split} {where}: {len(self.selection_set)} examples, {self.digest}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "attack_sample": list(self.attack_sample),
                "selection_set": list(self.selection_set), "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SelectionSplit:
        names = ("dataset", "split", "n", "seed", "attack_sample", "selection_split", "selection_set")
        return cls(**{k: tuple(data[k]) if k in ("attack_sample", "selection_set") else data[k] for k in names})


def divide(dataset: str, split: str, n: int, seed: int, attack_sample: Sequence[int], split_size: int,
           selection_split: str | None = None, selection_size: int | None = None) -> SelectionSplit:
    """The division of ``split`` (``split_size`` rows) given its ``attack_sample`` (dataset indices, drawn with
    ``seed``): the selection set is every other index of ``split``, or with ``selection_split`` (another split
    of ``selection_size`` rows) every index of that split."""
    sample = tuple(sorted(set(attack_sample)))
    if selection_split is None or selection_split == split:
        taken = set(sample)
        rest = tuple(i for i in range(split_size) if i not in taken)
        return SelectionSplit(dataset, split, n, seed, sample, split, rest)
    if selection_size is None:
        raise ValueError(f"the size of the selection split {selection_split!r} is needed")
    return SelectionSplit(dataset, split, n, seed, sample, selection_split, tuple(range(selection_size)))


def _patience(label: str) -> int | None:
    setting = parse_setting(label)
    return setting.value if setting.policy == "patience" else None


def within_margin(accuracy: float, baseline_accuracy: float, margin: float) -> bool:
    """The non-inferiority comparison on clean accuracy, the one the select rule and the verdict's eligibility
    both make: ``accuracy >= baseline_accuracy - margin`` (all fractions), up to :data:`MARGIN_TOLERANCE` of
    float rounding, so exactly ``margin`` below qualifies and anything further below does not. An unknown (NaN)
    accuracy, of the setting or of the baseline, never qualifies."""
    if math.isnan(accuracy) or math.isnan(baseline_accuracy):
        return False
    return accuracy >= baseline_accuracy - margin - MARGIN_TOLERANCE


def selection_table(rows: Sequence[Mapping[str, Any]], baseline_accuracy: float,
                    margin: float) -> list[dict[str, Any]]:
    """The table a rule chooses from: the patience settings among ``rows`` (each with ``setting`` and clean
    ``accuracy`` on the selection set, ``n`` when known), patience ascending, each with the baseline's accuracy
    and whether it is within ``margin`` of it."""
    table = [{"setting": parse_setting(r["setting"]).label, "n": r.get("n"), "accuracy": float(r["accuracy"]),
              "baseline_accuracy": float(baseline_accuracy),
              "within_margin": within_margin(float(r["accuracy"]), float(baseline_accuracy), margin)}
             for r in rows if _patience(str(r["setting"])) is not None]
    return sorted(table, key=lambda r: _patience(r["setting"]))


def select_setting(rule: str, rows: Sequence[Mapping[str, Any]], baseline_accuracy: float,
                   margin: float) -> str | None:
    """The setting ``rule`` pre-registers among ``rows`` (:func:`selection_table`'s input) against a baseline
    with clean accuracy ``baseline_accuracy`` on the same selection set; None when none qualifies."""
    check_rule(rule)
    return next((r["setting"] for r in selection_table(rows, baseline_accuracy, margin) if r["within_margin"]), None)


def pair_baselines(models: Mapping[str, tuple[str, int]]) -> list[tuple[str, str]]:
    """(early-exit model, baseline) pairs as the verdict compares them (``models``: id -> (head, layers)): each
    non-``full`` model with every ``full`` model of the same depth, or with every ``full`` model if none is."""
    bases = [m for m, (head, _) in models.items() if head == "full"]
    pairs = []
    for model, (head, layers) in models.items():
        if head == "full":
            continue
        same = [b for b in bases if models[b][1] == layers]
        pairs += [(model, b) for b in (same or bases)]
    return pairs
