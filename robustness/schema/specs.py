"""Run specs: what one attack run or one transfer computes, as frozen values with a stable id.

A :class:`RunSpec` is one attack run (one model at one exit setting, one recipe, one dataset sample); a
:class:`TransferSpec` replays a finished run's final texts against another model or setting. Each has a run id:
a readable slug plus a short hash of what is computed (locations are left out), so the same spec always lands in
the same directory (no timestamps in paths). :class:`VerdictOptions` say how a suite's verdict is reached; the
goals an attack can pursue are :data:`GOALS`. A suite (:mod:`robustness.suite.specs`) expands into these specs,
the attack stack (:mod:`robustness.attack`) executes them and the analysis reads what they wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from robustness.devices import check_device
from robustness.schema.encoders import LEGACY_ENCODER, recipe_encoder
from robustness.schema.selection import check_rule
from robustness.schema.settings import Setting, parse_setting

__all__ = ["GOALS", "SLOWDOWN_SCORES", "RunSpec", "TransferSpec", "VerdictOptions", "check_goal", "setting_order"]

#: What an attack optimises: flip the prediction at the exit, or push the exit deeper (robustness.attack.goals).
GOALS = ("accuracy", "slowdown")

#: How a slowdown attack scores a text to guide its search (robustness.attack.goals): ``exit`` (exit layer plus
#: closeness to not firing), ``waffle`` (every internal classifier's distance to uniform, WAFFLE's objective),
#: ``oavg`` (mean over exits of 1 - p_l[y]). The goal (exit reaches the target) is the same for all three.
SLOWDOWN_SCORES = ("exit", "waffle", "oavg")

#: Fields that say *where* things are, not *what* is computed: kept out of the run hash.
_LOCATION_FIELDS = ("model_dir", "data_dir", "device")
#: The same for a transfer: kept out of the transfer's hash.
_TRANSFER_LOCATIONS = ("source_run", "model_dir", "device")


def setting_order(labels: Any) -> list[str]:
    """Unique setting labels in display order: patience ascending, entropy, maxprob, ``full`` last."""
    return sorted(set(labels), key=lambda label: parse_setting(label).sort_key())


def check_goal(goal: str, goal_target: int | None = None, keep_prediction: bool = False,
               slowdown_score: str = "exit") -> None:
    """``ValueError`` for an unknown goal or slowdown score, or options that only the slowdown goal takes."""
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {', '.join(GOALS)}, got {goal!r}")
    if slowdown_score not in SLOWDOWN_SCORES:
        raise ValueError(f"slowdown score must be one of {', '.join(SLOWDOWN_SCORES)}, got {slowdown_score!r}")
    if goal != "slowdown" and (goal_target is not None or keep_prediction or slowdown_score != "exit"):
        raise ValueError("goal_target, keep_prediction and slowdown_score apply only to the slowdown goal")
    if goal_target is not None and (isinstance(goal_target, bool) or not isinstance(goal_target, int)
                                    or goal_target < 1):
        raise ValueError(f"goal_target must be an exit layer >= 1, got {goal_target!r}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class RunSpec:
    """One attack run: one model at one exit setting, one recipe, one dataset sample. ``setting`` is any
    form :func:`parse_setting` reads and is stored as its canonical label (``"patience:2"``, ``"full"``)."""

    model_id: str
    model_dir: str
    recipe: str
    dataset: str
    setting: str = "full"
    split: str = "validation"
    n: int = 100
    seed: int = 0
    query_budget: int | None = None
    batch_size: int = 32
    max_length: int = 128
    stock: bool = False
    data_dir: str | None = None
    goal: str = "accuracy"
    goal_target: int | None = None  # slowdown: the exit layer to reach (None = L)
    keep_prediction: bool = False  # slowdown: the exit prediction must stay the original text's
    slowdown_score: str = "exit"  # slowdown: the score that guides the search (SLOWDOWN_SCORES)
    device: str = "auto"  # where it runs (robustness.devices): recorded, never part of the run's identity
    #: offline sentence encoder of the recipe's similarity constraint ("use-m3" | "minilm"); given None, the
    #: recipe's default (use-m3 where the paper uses USE, minilm for a2t); stored None for recipes without
    #: one and for stock recipes. A spec.json without the field (before the choice existed) reads "minilm".
    sentence_encoder: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "setting", parse_setting(self.setting).label)
        object.__setattr__(self, "device", check_device(self.device, "device"))
        object.__setattr__(self, "sentence_encoder", recipe_encoder(self.recipe, self.sentence_encoder, self.stock))
        check_goal(self.goal, self.goal_target, self.keep_prediction, self.slowdown_score)
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.query_budget is not None and self.query_budget < 1:
            raise ValueError(f"query_budget must be >= 1, got {self.query_budget}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def exit_setting(self) -> Setting:
        return parse_setting(self.setting)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """From ``to_dict`` output or a spec.json; one written before settings existed (``patience``: an int
        or null) is read as that patience setting, one written before the sentence encoder could be chosen as
        MiniLM's (the only encoder then)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values.setdefault("sentence_encoder", LEGACY_ENCODER)
        if "setting" not in data and "patience" in data:
            values["setting"] = parse_setting(data["patience"]).label
        return cls(**values)

    def content_hash(self) -> str:
        """Hash of what is computed. Patience and full settings hash as the former ``patience`` field did, and
        the goal fields enter only when they differ from the accuracy goal, and the slowdown score only when it
        is not ``exit``, and the sentence encoder only when it is not MiniLM (or none), so run ids made before
        settings, goals, scores and USE-m3 existed stay the same."""
        content = {k: v for k, v in self.to_dict().items() if k not in _LOCATION_FIELDS}
        if self.slowdown_score == "exit":
            del content["slowdown_score"]
        if self.sentence_encoder in (None, LEGACY_ENCODER):  # MiniLM runs keep the ids they had before USE-m3
            del content["sentence_encoder"]
        if self.goal == "accuracy":
            for name in ("goal", "goal_target", "keep_prediction"):
                del content[name]
        setting = self.exit_setting
        if setting.policy in ("patience", "full"):
            del content["setting"]
            content["patience"] = setting.value
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:6]

    @property
    def run_id(self) -> str:
        """``<model>-<setting slug>_<recipe>[-slowdown[-<score>]]_<dataset>_<hash>``, e.g.
        ``pabee-minilm-p3_textfooler_sst2_3f2a1c``, ``pabee-minilm-ent0-35_textfooler-slowdown_sst2_9b1e0d`` or
        (a slowdown score other than ``exit``; MiniLM sentence encoder)
        ``pabee-minilm-p2_textfooler-slowdown-waffle_sst2_5ce146``."""
        dataset = _slug(self.dataset.split("/")[-1])
        model = f"{_slug(self.model_id)}-{_slug(self.exit_setting.slug)}"
        recipe = _slug(self.recipe) + ("" if self.goal == "accuracy" else f"-{self.goal}")
        recipe += "" if self.slowdown_score == "exit" else f"-{self.slowdown_score}"
        return f"{model}_{recipe}_{dataset}_{self.content_hash()}"


@dataclass(frozen=True)
class VerdictOptions:
    """How a suite's verdict is reached (``[verdict]`` in the suite): non-inferiority ``margin`` on clean accuracy
    (a fraction: 0.01 = 1 point), minimum paired ``min_n``, significance level ``alpha``, an optional
    pre-registered ``setting`` (``"patience:3"``; a plain integer means patience) or instead of it a
    pre-registered selection rule ``select`` (:data:`~robustness.schema.selection.SELECTION_RULES`) that bench
    applies on the selection set before any attack, and the pre-registered ``equivalence_margin`` δ on accuracy
    under attack (a fraction: 0.05 = 5 points; a setting is equivalent to its baseline when a paired TOST puts the
    difference within ±δ)."""

    margin: float = 0.01
    min_n: int = 100
    alpha: float = 0.05
    setting: str | None = None
    select: str | None = None
    equivalence_margin: float = 0.05

    def __post_init__(self) -> None:
        delta = self.equivalence_margin
        if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
            raise ValueError(f"verdict equivalence_margin (report --equivalence-margin) must be a fraction in "
                             f"(0, 1), e.g. 0.05 = 5 points; got {delta!r}")
        if not 0 <= self.margin < 1:
            raise ValueError(f"verdict margin must be a fraction in [0, 1), got {self.margin}")
        if self.min_n < 1:
            raise ValueError(f"verdict min_n must be >= 1, got {self.min_n}")
        if not 0 < self.alpha < 0.5:  # the equivalence test reads a (1 - 2 alpha) interval
            raise ValueError(f"verdict alpha must be in (0, 0.5), got {self.alpha}")
        if self.setting is not None:
            object.__setattr__(self, "setting", parse_setting(self.setting).label)
        if self.select is not None:
            if self.setting is not None:
                raise ValueError("verdict select: give either a pre-registered setting or a select rule, not both")
            check_rule(self.select)


@dataclass(frozen=True)
class TransferSpec:
    """Replay run ``source_run`` (a finished attack run directory) against ``model_dir`` at ``setting``
    (executed by :func:`robustness.attack.transfer.run_transfer`)."""

    source_run: str
    source_run_id: str
    model_id: str
    model_dir: str
    setting: str = "full"
    batch_size: int = 32
    max_length: int = 128
    device: str = "auto"  # recorded, not part of the identity (robustness.devices)

    def __post_init__(self) -> None:
        object.__setattr__(self, "setting", parse_setting(self.setting).label)
        object.__setattr__(self, "device", check_device(self.device, "device"))

    @property
    def run_id(self) -> str:
        """``<target model>-<setting slug>_from_<source run id>_<hash>``."""
        content = {k: v for k, v in asdict(self).items() if k not in _TRANSFER_LOCATIONS}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:6]
        model = _slug(f"{self.model_id}-{parse_setting(self.setting).slug}")
        return f"{model}_from_{self.source_run_id}_{digest}"
