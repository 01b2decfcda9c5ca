"""Everything about a suite that can be checked before any training or attack (``validate_suite``).

``bench`` (and any executor of a suite's plan) calls :func:`validate_suite` first, so that an unknown recipe
listed second, a foreign report in the output directory, an unsafe model id, an output path that is a file,
bad data or a setting the model cannot reach is found in seconds, not after hours of earlier runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from robustness.models.saved import saved_facts
from robustness.requests import check_calibration_target, check_run_request, check_verdict_setting
from robustness.schema.settings import (
    THRESHOLD_POLICIES,
    calibrated_setting,
    check_setting_reachable,
    read_calibration,
    resolve_calibrated,
)
from robustness.suite.selection import check_select_rule, draw_selection
from robustness.suite.specs import ModelSpec, SuiteSpec, parse_selector, parse_setting
from robustness.suite.suite_file import check_id


def _train_config(model: ModelSpec, suite: SuiteSpec, target: Path) -> Any:
    from robustness.models.train import TrainConfig
    from robustness.suite.defended import ADVERSARIAL_KEYS, split_train

    allowed = {f.name for f in dataclasses.fields(TrainConfig)} - {"out", "head"}
    unknown = set(model.train) - allowed - set(ADVERSARIAL_KEYS)
    if unknown:
        raise ValueError(f"model {model.id!r}: unknown train keys {sorted(unknown)}; known: "
                         f"{sorted(allowed | set(ADVERSARIAL_KEYS))}")
    own, adv = split_train(model.train)
    if adv:  # a fine-tuning trains with its init model's options unless it gives its own
        init = {m.id: m for m in suite.models}[adv["init"]]
        own = {**split_train(init.train)[0], **own}
    values = {"dataset": suite.dataset, "data_dir": suite.data_dir, **own}
    try:
        return TrainConfig(out=str(target), head=model.head, **values)
    except TypeError as exc:  # e.g. epochs = "two"
        raise ValueError(f"model {model.id!r}: invalid [models.train] value: {exc}") from None


def _check_defended(suite: SuiteSpec, layers: dict[str, int], heads: dict[str, str], mlm: str | None) -> None:
    """Each defended model's adversarial options, on what its init model will be (layers, head)."""
    from robustness.attack.adversarial_options import check_against_init, check_options
    from robustness.suite.defended import adversarial_options, split_train

    for model in suite.models:
        adv = split_train(model.train)[1]
        if adv:
            where = f"model {model.id!r}"
            options = adversarial_options(model, adv["init"])
            try:
                check_options(options, mlm=mlm)
                check_against_init(options, num_layers=layers[adv["init"]], head=heads[adv["init"]],
                                   where=f"init {adv['init']!r}")
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None


def _num_layers_of_backbone(backbone: str | None) -> int:
    from transformers import AutoConfig

    from robustness.models.train import default_backbone
    from robustness.resources.backbones import resolve_backbone

    source = resolve_backbone(backbone or default_backbone())
    try:
        return int(AutoConfig.from_pretrained(source, trust_remote_code=False).num_hidden_layers)
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"backbone {source}: cannot read its config: {' '.join(str(exc).split())[:200]}") from None


def _check_patience(model: ModelSpec, num_layers: int) -> None:
    for setting in (*model.settings, *model.candidates):
        check_setting_reachable(setting, num_layers, f"model {model.id!r}")


def check_selections(suite: SuiteSpec, settings: dict[str, list[str]], final: bool = True) -> None:
    """The suite's transfers and its ``[verdict] setting`` name settings the suite runs (``settings``: model id ->
    its setting labels). Before calibration (``final`` False) a threshold setting of a model with calibrated
    references may still appear, so it is checked after calibration, before the attacks."""

    def pending(model_id: str, label: str) -> bool:
        models = {m.id: m for m in suite.models}
        return not final and parse_setting(label).policy in THRESHOLD_POLICIES and bool(models[model_id].calibrated)

    for source, target in suite.transfers:
        where = f"transfer {source} -> {target}"
        src_model, src_setting = parse_selector(source, dict.fromkeys(settings))
        dst_model, dst_setting = parse_selector(target, dict.fromkeys(settings))
        if src_setting == "*" or src_setting not in settings[src_model] and not pending(src_model, src_setting):
            raise ValueError(f"{where}: the suite never runs {source} (model {src_model!r} runs "
                             f"{', '.join(settings[src_model])}); name one of those settings")
        if (dst_model, dst_setting) == (src_model, src_setting):
            raise ValueError(f"{where}: replays a run onto itself; name another model or setting")
    labels = {label for labels in settings.values() for label in labels}
    if suite.verdict.setting is not None and not any(pending(m, suite.verdict.setting) for m in settings):
        check_verdict_setting(suite.verdict.setting, labels, "[verdict] setting")


def check_plan(suite: SuiteSpec, model_dirs: dict[str, str]) -> None:
    """After training and calibration, before the attacks: every run and transfer of the suite is possible
    on its model (:func:`robustness.requests.check_run_request`, calibrated settings included) and its
    selections name settings that are run (:func:`check_selections`)."""
    facts = {m.id: saved_facts(model_dirs[m.id]) for m in suite.models}
    for spec in suite.run_specs(model_dirs):
        fact = facts[spec.model_id]
        check_run_request(spec.setting, num_layers=fact.num_layers, head=fact.head, where=f"model {spec.model_id!r}",
                          goal=spec.goal, goal_target=spec.goal_target)
    for transfer in suite.transfer_specs(model_dirs, "runs"):
        fact = facts[transfer.model_id]
        check_run_request(transfer.setting, num_layers=fact.num_layers, head=fact.head,
                          where=f"transfer target model {transfer.model_id!r}")
    check_selections(suite, {m.id: [s.label for s in m.exit_settings(model_dirs[m.id])] for m in suite.models})


def validate_suite(suite: SuiteSpec, out: str | Path, *, overwrite: bool = False, mlm: str | None = None) -> None:
    """Check the whole suite and every output location before any work; ``ValueError`` on the first problem.

    Checks: the output directory (a writable directory, no foreign report files there unless ``overwrite``),
    every recipe (known, resources it needs), every model (safe id; an existing ``path`` holds a whole model;
    a model to train has known train keys and a free target inside ``<out>/models``), settings each
    model can reach (patience < L; :mod:`robustness.requests`: goals, goal targets, calibration targets), the
    suite's transfers and ``[verdict] setting`` (:func:`check_selections`), the split (every row: the clean
    tables read those outside the sample) and its attack sample (``n`` rows, non-empty texts, integer labels),
    the selection split when one is declared, a ``[verdict] select`` rule (a selection set to choose on, a
    patience to choose, a baseline to compare with) and the training data of each model to train.
    :func:`check_plan` repeats the checks on calibrated settings."""
    from robustness.attack.recipes import check_recipe
    from robustness.data import dataset_info, load_examples
    from robustness.models.train import check_train_out
    from robustness.outputs import check_output_dir, resolve_inside
    from robustness.report import check_report_out

    out = check_output_dir(out)
    dataset_info(suite.dataset)
    for recipe in suite.recipes:
        check_recipe(recipe, mlm=mlm)
    layers, heads = {}, {m.id: m.head for m in suite.models}
    for model in suite.models:
        check_id(model.id, "suite")
        saved = model.path
        if saved is None:
            target = resolve_inside(out, Path("models") / model.id)
            config = _train_config(model, suite, target)
            if (target / "train.json").is_file():
                saved = str(target)
            else:
                check_train_out(target, overwrite=True)
                load_examples(config.dataset, config.train_split, data_dir=config.data_dir, limit=config.limit,
                              seed=config.seed)
                load_examples(config.dataset, config.eval_split, data_dir=config.data_dir,
                              limit=config.eval_limit, seed=config.seed)
                layers[model.id] = _num_layers_of_backbone(config.backbone)
        if saved is not None:  # a saved model's own facts, whatever the suite says of it
            facts = saved_facts(saved)
            layers[model.id], heads[model.id] = facts.num_layers, facts.head
        _check_patience(model, layers[model.id])
        for reference in model.fixed_calibrated:  # those to the select rule's choice: by check_plan
            check_calibration_target(calibrated_setting(reference)[1], num_layers=layers[model.id],
                                     head=heads[model.id], where=f"model {model.id!r} calibrated {reference!r}")
            if saved is not None and "@".join(calibrated_setting(reference)) in read_calibration(saved):
                resolve_calibrated(reference, saved)  # an entry already there must be usable (bench reuses it)
    _check_defended(suite, layers, heads, mlm)
    for spec in suite.run_specs({m.id: m.path or str(out / "models" / m.id) for m in suite.models}, calibrated=False):
        check_run_request(spec.setting, num_layers=layers[spec.model_id], head=heads[spec.model_id],
                          where=f"model {spec.model_id!r}", goal=spec.goal, goal_target=spec.goal_target)
    for source, target in suite.transfers:
        dst_model, dst_setting = parse_selector(target, layers)
        if dst_setting != "*":
            check_run_request(dst_setting, num_layers=layers[dst_model], head=heads[dst_model],
                              where=f"transfer {source} -> {target}")
    check_selections(suite, {m.id: [s.label for s in m.settings] for m in suite.models}, final=False)
    # the whole split, not only the attack sample: the clean tables and calibration read the examples outside it
    # (or those of a declared selection split): the selection set, on which a select rule chooses
    check_select_rule(suite, len(draw_selection(suite)[0].selection_set))
    check_report_out(out, overwrite)
