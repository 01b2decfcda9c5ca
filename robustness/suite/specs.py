"""Frozen specs for suites, models and attack runs, JSON out (a suite file is read by
:mod:`robustness.suite.suite_file`).

A suite (``attacks/<name>.toml``) expands into :class:`ModelSpec` s (train or load) and
:class:`RunSpec` s (one attack run each). A run's id is a readable slug plus a short hash of the
resolved spec, so the same spec always lands in the same directory (no timestamps in paths).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustness.models.settings import POLICIES, Setting, parse_setting, resolve_calibrated
from robustness.resources.sentence_encoder import LEGACY_ENCODER, check_encoder, recipe_encoder

__all__ = ["GOALS", "POLICIES", "ModelSpec", "RunSpec", "Setting", "SuiteSpec", "VerdictOptions", "check_goal",
           "parse_selector", "parse_setting", "setting_order"]

#: What an attack optimises: flip the prediction at the exit, or push the exit deeper (robustness.attack.goals).
GOALS = ("accuracy", "slowdown")

#: Fields that say *where* things are, not *what* is computed: kept out of the run hash.
_LOCATION_FIELDS = ("model_dir", "data_dir")


def setting_order(labels: Any) -> list[str]:
    """Unique setting labels in display order: patience ascending, entropy, maxprob, ``full`` last."""
    return sorted(set(labels), key=lambda label: parse_setting(label).sort_key())


def check_goal(goal: str, goal_target: int | None = None, keep_prediction: bool = False) -> None:
    """``ValueError`` for an unknown goal, or options that only the slowdown goal takes."""
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {', '.join(GOALS)}, got {goal!r}")
    if goal != "slowdown" and (goal_target is not None or keep_prediction):
        raise ValueError("goal_target and keep_prediction apply only to the slowdown goal")
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
    #: offline sentence encoder of the recipe's similarity constraint ("use-m3" | "minilm"); given None, the
    #: recipe's default (use-m3 where the paper uses USE, minilm for a2t); stored None for recipes without
    #: one and for stock recipes. A spec.json without the field (before the choice existed) reads "minilm".
    sentence_encoder: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "setting", parse_setting(self.setting).label)
        object.__setattr__(self, "sentence_encoder", recipe_encoder(self.recipe, self.sentence_encoder, self.stock))
        check_goal(self.goal, self.goal_target, self.keep_prediction)
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
        """Hash of what is computed. Patience and full settings hash as the former ``patience`` field did, the
        goal fields enter only when they differ from the accuracy goal, and the sentence encoder only when it
        is not MiniLM (or none), so run ids made before settings, goals and USE-m3 existed stay the same."""
        content = {k: v for k, v in self.to_dict().items() if k not in _LOCATION_FIELDS}
        if self.sentence_encoder in (None, LEGACY_ENCODER):
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
        """``<model>-<setting slug>_<recipe>[-slowdown]_<dataset>_<hash>``, e.g.
        ``pabee-minilm-p3_textfooler_sst2_3f2a1c`` or ``pabee-minilm-ent0-35_textfooler-slowdown_sst2_9b1e0d``."""
        dataset = _slug(self.dataset.split("/")[-1])
        model = f"{_slug(self.model_id)}-{_slug(self.exit_setting.slug)}"
        recipe = _slug(self.recipe) + ("" if self.goal == "accuracy" else f"-{self.goal}")
        return f"{model}_{recipe}_{dataset}_{self.content_hash()}"


@dataclass(frozen=True)
class ModelSpec:
    """A model of a suite: an existing directory (``path``) or a training recipe (``train``)."""

    id: str
    head: str = "pabee"
    path: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    settings: tuple[Setting, ...] = ()
    #: thresholds calibrated to a speed-up (``entropy@patience:2``), read from the model's calibration.json
    calibrated: tuple[str, ...] = ()

    def exit_settings(self, model_dir: str, calibrated: bool = True) -> tuple[Setting, ...]:
        """``settings`` plus (with ``calibrated``) the ``calibrated`` references resolved in ``model_dir``."""
        resolved = [resolve_calibrated(r, model_dir) for r in self.calibrated] if calibrated else []
        return tuple(dict.fromkeys([*self.settings, *resolved]))


@dataclass(frozen=True)
class VerdictOptions:
    """How a suite's verdict is reached (``[verdict]`` in the suite): non-inferiority ``margin`` on clean accuracy
    (a fraction: 0.01 = 1 point), minimum paired ``min_n``, significance level ``alpha``, and an optional
    pre-registered ``setting`` (``"patience:3"``; a plain integer means patience)."""

    margin: float = 0.01
    min_n: int = 100
    alpha: float = 0.05
    setting: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ValueError(f"verdict margin must be a fraction in [0, 1), got {self.margin}")
        if self.min_n < 1:
            raise ValueError(f"verdict min_n must be >= 1, got {self.min_n}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"verdict alpha must be in (0, 1), got {self.alpha}")
        if self.setting is not None:
            object.__setattr__(self, "setting", parse_setting(self.setting).label)


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    dataset: str
    models: tuple[ModelSpec, ...]
    recipes: tuple[str, ...]
    split: str = "validation"
    n: int = 100
    seed: int = 0
    query_budget: int | None = None
    batch_size: int = 32
    max_length: int = 128
    data_dir: str | None = None
    nltk_data: str | None = None
    lexicons: str | None = None
    resources: str | None = None  # a resource bundle (robustness.resources.bundle); the fields above override it
    quality: bool = False  # bench also runs the quality stage (robustness.quality) on every run
    lm: str | None = None  # its causal LM (default: the bundle's models/lm, else SmolLM2-135M)
    verdict: VerdictOptions = field(default_factory=VerdictOptions)
    goals: tuple[str, ...] = ("accuracy",)
    #: (source, target) selectors ``MODEL@SETTING`` (target setting ``*``: every setting of the model): the
    #: final texts of every run of the source setting are replayed against the target (robustness transfer)
    transfers: tuple[tuple[str, str], ...] = ()
    goal_target: int | None = None  # slowdown runs: the exit layer to reach (None = L)
    keep_prediction: bool = False  # slowdown runs: pure slowdown (the prediction must not change)
    #: offline sentence encoder of every run with a sentence-encoder constraint ("use-m3" | "minilm");
    #: None: each recipe's default (RunSpec.sentence_encoder)
    sentence_encoder: str | None = None

    def __post_init__(self) -> None:
        for goal in self.goals:
            check_goal(goal)
        if self.sentence_encoder is not None:
            check_encoder(self.sentence_encoder)
        if self.goal_target is not None or self.keep_prediction:
            check_goal("slowdown", self.goal_target, self.keep_prediction)

    def transfer_specs(self, model_dirs: dict[str, str], runs_root: str | Path) -> list[Any]:
        """Every transfer the suite declares: each run (any recipe and goal) of a source ``MODEL@SETTING`` replayed
        against each target setting (``MODEL@*``: all of the model's settings), never against itself."""
        from robustness.attack.transfer import TransferSpec

        models = {m.id: m for m in self.models}
        runs = self.run_specs(model_dirs)
        out = []
        for source, target in self.transfers:
            (src_model, src_setting), (dst_model, dst_setting) = (parse_selector(source, models),
                                                                  parse_selector(target, models))
            settings = (models[dst_model].exit_settings(model_dirs[dst_model]) if dst_setting == "*"
                        else (parse_setting(dst_setting),))
            for run in (r for r in runs if r.model_id == src_model and r.setting == parse_setting(src_setting).label):
                out += [TransferSpec(source_run=str(Path(runs_root) / run.run_id), source_run_id=run.run_id,
                                     model_id=dst_model, model_dir=model_dirs[dst_model], setting=s.label,
                                     batch_size=self.batch_size, max_length=self.max_length)
                        for s in settings if (dst_model, s.label) != (src_model, run.setting)]
        return out

    def run_specs(self, model_dirs: dict[str, str], calibrated: bool = True) -> list[RunSpec]:
        """Every (model, setting, goal, recipe) run, given where each model lives. Slowdown runs are made only
        for early-exit settings: at ``full`` every text already exits at L. ``calibrated=False`` leaves out the
        calibrated settings (before the models exist, e.g. to validate the suite)."""
        runs = []
        for model in self.models:
            for setting in model.exit_settings(model_dirs[model.id], calibrated):
                for goal in self.goals:
                    if goal == "slowdown" and (setting.policy == "full" or model.head == "full"):
                        continue
                    slowdown = {"goal_target": self.goal_target, "keep_prediction": self.keep_prediction}
                    for recipe in self.recipes:
                        runs.append(
                            RunSpec(
                                model_id=model.id, model_dir=model_dirs[model.id], recipe=recipe,
                                dataset=self.dataset, setting=setting.label, split=self.split, n=self.n,
                                seed=self.seed, query_budget=self.query_budget, batch_size=self.batch_size,
                                max_length=self.max_length, data_dir=self.data_dir, goal=goal,
                                sentence_encoder=self.sentence_encoder,
                                **(slowdown if goal == "slowdown" else {}),
                            )
                        )
        return runs


def parse_selector(text: str, models: dict[str, Any]) -> tuple[str, str]:
    """``MODEL@SETTING`` -> (model id, setting label or ``*``); ValueError for an unknown model or setting."""
    model, sep, setting = str(text).partition("@")
    if not sep or model not in models or not setting:
        raise ValueError(f"transfer selector {text!r} must be MODEL@SETTING with a model of the suite "
                         f"({', '.join(models)}) and a setting or *")
    return model, setting if setting == "*" else parse_setting(setting).label
