"""Frozen specs for suites and their models (a suite file is read by :mod:`robustness.suite.suite_file`).

A suite (``attacks/<name>.toml``) expands into :class:`ModelSpec` s (train or load) and the run and transfer
specs of :mod:`robustness.schema.specs` (one attack run or replay each), which live below the suite so that
every stage can read them. The run-level names (``RunSpec``, ``VerdictOptions``, ``GOALS``, ``check_goal``,
``setting_order``, ``Setting``, ``parse_setting``, ``POLICIES``) are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from robustness.devices import check_device
from robustness.schema.encoders import check_encoder
from robustness.schema.settings import (
    POLICIES,
    SELECTED,
    Setting,
    calibrated_setting,
    parse_setting,
    resolve_calibrated,
)
from robustness.schema.specs import (
    GOALS,
    SLOWDOWN_SCORES,
    RunSpec,
    TransferSpec,
    VerdictOptions,
    check_goal,
    setting_order,
)

__all__ = ["GOALS", "POLICIES", "SLOWDOWN_SCORES", "ModelSpec", "RunSpec", "Setting", "SuiteSpec", "TransferSpec",
           "VerdictOptions", "check_goal", "parse_selector", "parse_setting", "setting_order"]


@dataclass(frozen=True)
class ModelSpec:
    """A model of a suite: an existing directory (``path``) or a training recipe (``train``).

    With a ``[verdict] select`` rule, ``selected`` says the model also runs the setting the rule pre-registers
    for it (``settings = [..., "selected"]``) and ``calibrated`` may reference it (``entropy@selected``); both are
    known only once bench has recorded the rule's choice (:meth:`with_choices`). ``candidates`` are settings
    evaluated clean on the selection set (the rule chooses among the patience settings of ``settings`` and
    ``candidates``) but never attacked."""

    id: str
    head: str = "pabee"
    path: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    settings: tuple[Setting, ...] = ()
    #: thresholds calibrated to a speed-up (``entropy@patience:2``), read from the model's calibration.json
    calibrated: tuple[str, ...] = ()
    selected: bool = False
    candidates: tuple[Setting, ...] = ()

    @property
    def fixed_calibrated(self) -> tuple[str, ...]:
        """The ``calibrated`` references whose target is known before the select rule chooses."""
        return tuple(r for r in self.calibrated if calibrated_setting(r)[1] != SELECTED)

    @property
    def awaits_choice(self) -> bool:
        """The model names the select rule's choice (a ``selected`` setting or a reference to it)."""
        return self.selected or len(self.fixed_calibrated) < len(self.calibrated)

    def exit_settings(self, model_dir: str, calibrated: bool = True) -> tuple[Setting, ...]:
        """``settings`` plus (with ``calibrated``) the ``calibrated`` references resolved in ``model_dir``; those
        naming the select rule's choice are left out until :meth:`with_choices` has made them concrete."""
        resolved = [resolve_calibrated(r, model_dir) for r in self.fixed_calibrated] if calibrated else []
        return tuple(dict.fromkeys([*self.settings, *resolved]))

    def clean_settings(self, model_dir: str) -> tuple[Setting, ...]:
        """What the clean tables evaluate on the selection set: :meth:`exit_settings` and the ``candidates``."""
        return tuple(dict.fromkeys([*self.exit_settings(model_dir), *self.candidates]))

    def with_choices(self, chosen: list[str]) -> ModelSpec:
        """This model with the select rule's choices for it (setting labels; empty: none qualified) in place of
        ``selected`` and of ``@selected`` references: each chosen setting is run, each reference is calibrated
        to each chosen setting. A model with no choice runs its other settings only."""
        if not self.awaits_choice:
            return self
        settings = [*self.settings, *(parse_setting(c) for c in chosen if self.selected)]
        references = [*self.fixed_calibrated,
                      *(f"{calibrated_setting(r)[0]}@{parse_setting(c).label}" for r in self.calibrated
                        if calibrated_setting(r)[1] == SELECTED for c in chosen)]
        return replace(self, settings=tuple(dict.fromkeys(settings)), calibrated=tuple(dict.fromkeys(references)),
                       selected=False)


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    dataset: str
    models: tuple[ModelSpec, ...]
    recipes: tuple[str, ...]
    split: str = "validation"
    #: the split whose examples form the selection set (robustness.schema.selection); None: the examples of
    #: ``split`` outside the attack sample
    selection_split: str | None = None
    n: int = 100
    #: the attack sample of the whole study when this suite attacks a part of it (a costly slowdown part): the
    #: division (attack sample vs selection set) is drawn with ``study_n`` examples, of which the suite's ``n``
    #: (drawn with the same seed) must be a subset; None: ``n``
    study_n: int | None = None
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
    #: bench also re-validates every run's successful adversarial texts with this preset (robustness.revalidate,
    #: e.g. "morris2020"; it uses ``lm`` too); None: no re-validation
    revalidate: str | None = None
    verdict: VerdictOptions = field(default_factory=VerdictOptions)
    goals: tuple[str, ...] = ("accuracy",)
    #: (source, target) selectors ``MODEL@SETTING`` (target setting ``*``: every setting of the model): the
    #: final texts of every run of the source setting are replayed against the target (robustness transfer)
    transfers: tuple[tuple[str, str], ...] = ()
    goal_target: int | None = None  # slowdown runs: the exit layer to reach (None = L)
    keep_prediction: bool = False  # slowdown runs: pure slowdown (the prediction must not change)
    #: slowdown runs: the scores that guide the search (SLOWDOWN_SCORES); one slowdown run per score
    slowdown_score: tuple[str, ...] = ("exit",)
    device: str = "auto"  # every stage's device (auto|cpu|cuda|cuda:N, robustness.devices); --device overrides it
    #: offline sentence encoder of every run with a sentence-encoder constraint ("use-m3" | "minilm");
    #: None: each recipe's default (RunSpec.sentence_encoder)
    sentence_encoder: str | None = None
    #: universal slowdown triggers searched after the attacks (robustness.suite.triggers.TriggerEntry)
    triggers: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", check_device(self.device, "[suite] device"))
        if self.sentence_encoder is not None:
            check_encoder(self.sentence_encoder)
        if self.revalidate is not None:
            from robustness.revalidate import check_preset

            if not isinstance(self.revalidate, str):
                raise ValueError(f"suite revalidate must be a preset name, got {self.revalidate!r}")
            check_preset(self.revalidate)
        for goal in self.goals:
            check_goal(goal)
        if isinstance(self.slowdown_score, str):
            object.__setattr__(self, "slowdown_score", (self.slowdown_score,))
        if not self.slowdown_score:
            raise ValueError("slowdown_score needs at least one of " + ", ".join(SLOWDOWN_SCORES))
        object.__setattr__(self, "slowdown_score", tuple(dict.fromkeys(self.slowdown_score)))
        for score in self.slowdown_score:
            check_goal("slowdown", slowdown_score=score)
        if self.slowdown_score != ("exit",) and "slowdown" not in self.goals:
            raise ValueError("slowdown_score applies only to slowdown runs: add \"slowdown\" to goals")
        if self.goal_target is not None or self.keep_prediction:
            check_goal("slowdown", self.goal_target, self.keep_prediction)
        if self.study_n is not None and self.study_n < self.n:
            raise ValueError(f"[suite] study_n ({self.study_n}) is the study's attack sample, of which this suite "
                             f"attacks n = {self.n}: it must be >= n")

    def with_choices(self, choices: list[dict] | None) -> SuiteSpec:
        """The suite with the select rule's recorded ``choices`` (``selection.json``: dicts with ``model`` and
        ``setting``, None when none qualified) made concrete in every model (:meth:`ModelSpec.with_choices`)."""
        chosen: dict[str, list[str]] = {}
        for choice in choices or []:
            if choice.get("setting") is not None:
                chosen.setdefault(choice["model"], []).append(choice["setting"])
        return replace(self, models=tuple(m.with_choices(chosen.get(m.id, [])) for m in self.models))

    def transfer_specs(self, model_dirs: dict[str, str], runs_root: str | Path) -> list[TransferSpec]:
        """Every transfer the suite declares: each run (any recipe and goal) of a source ``MODEL@SETTING`` replayed
        against each target setting (``MODEL@*``: all of the model's settings), never against itself."""
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
                                     batch_size=self.batch_size, max_length=self.max_length, device=self.device)
                        for s in settings if (dst_model, s.label) != (src_model, run.setting)
                        # a slowdown text replayed where every text exits at L has nothing to show (as run_specs)
                        and not (run.goal == "slowdown" and (s.policy == "full" or models[dst_model].head == "full"))]
        return out

    def run_specs(self, model_dirs: dict[str, str], calibrated: bool = True) -> list[RunSpec]:
        """Every (model, setting, goal, recipe[, slowdown score]) run, given where each model lives. Slowdown runs
        are made once per slowdown score, and only for early-exit settings: at ``full`` every text already exits
        at L. ``calibrated=False`` leaves out the calibrated settings (before the models exist, e.g. to validate
        the suite)."""
        runs = []
        for model in self.models:
            for setting in model.exit_settings(model_dirs[model.id], calibrated):
                for goal in self.goals:
                    if goal == "slowdown" and (setting.policy == "full" or model.head == "full"):
                        continue
                    scores = self.slowdown_score if goal == "slowdown" else ("exit",)
                    for recipe in self.recipes:
                        for score in scores:
                            slowdown = {"goal_target": self.goal_target, "keep_prediction": self.keep_prediction,
                                        "slowdown_score": score}
                            runs.append(RunSpec(
                                model_id=model.id, model_dir=model_dirs[model.id], recipe=recipe,
                                dataset=self.dataset, setting=setting.label, split=self.split, n=self.n,
                                seed=self.seed, query_budget=self.query_budget, batch_size=self.batch_size,
                                max_length=self.max_length, data_dir=self.data_dir, goal=goal, device=self.device,
                                sentence_encoder=self.sentence_encoder,
                                **(slowdown if goal == "slowdown" else {}),
                            ))
        return runs


def parse_selector(text: str, models: dict[str, Any]) -> tuple[str, str]:
    """``MODEL@SETTING`` -> (model id, setting label or ``*``); ValueError for an unknown model or setting."""
    model, sep, setting = str(text).partition("@")
    if not sep or model not in models or not setting:
        raise ValueError(f"transfer selector {text!r} must be MODEL@SETTING with a model of the suite "
                         f"({', '.join(models)}) and a setting or *")
    return model, setting if setting == "*" else parse_setting(setting).label
