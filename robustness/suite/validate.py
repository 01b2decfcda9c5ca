"""Everything about a suite that can be checked before any training or attack (``validate_suite``).

``bench`` (and any executor of a suite's plan) calls :func:`validate_suite` first, so that an unknown recipe
listed second, a foreign report in the output directory, an unsafe model id, an output path that is a file,
bad data or a setting the model cannot reach is found in seconds, not after hours of earlier runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from robustness.schema.settings import check_setting_reachable
from robustness.suite.specs import ModelSpec, SuiteSpec
from robustness.suite.suite_file import check_id


def _train_config(model: ModelSpec, suite: SuiteSpec, target: Path) -> Any:
    from robustness.models.train import TrainConfig

    allowed = {f.name for f in dataclasses.fields(TrainConfig)} - {"out", "head"}
    unknown = set(model.train) - allowed
    if unknown:
        raise ValueError(f"model {model.id!r}: unknown train keys {sorted(unknown)}; known: {sorted(allowed)}")
    values = {"dataset": suite.dataset, "data_dir": suite.data_dir, **model.train}
    try:
        return TrainConfig(out=str(target), head=model.head, **values)
    except TypeError as exc:  # e.g. epochs = "two"
        raise ValueError(f"model {model.id!r}: invalid [models.train] value: {exc}") from None


def _num_layers_of_saved(path: str) -> int:
    from robustness.models.saved import saved_facts

    return saved_facts(path).num_layers


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
    for setting in model.settings:
        check_setting_reachable(setting, num_layers, f"model {model.id!r}")


def validate_suite(suite: SuiteSpec, out: str | Path, *, overwrite: bool = False, mlm: str | None = None) -> None:
    """Check the whole suite and every output location before any work; ``ValueError`` on the first problem.

    Checks: the output directory (a writable directory, no foreign report files there unless ``overwrite``),
    every recipe (known, resources it needs), every model (safe id; an existing ``path`` holds a whole model;
    a model to train has known train keys and a free target inside ``<out>/models``), settings each
    model can reach (patience < L), the attack sample (exists, has ``n`` rows, non-empty texts, integer labels) and the
    training data of each model to train."""
    from robustness.attack.recipes import check_recipe
    from robustness.data import dataset_info, load_examples
    from robustness.models.train import check_train_out
    from robustness.outputs import check_output_dir, resolve_inside
    from robustness.report import check_report_out

    out = check_output_dir(out)
    dataset_info(suite.dataset)
    for recipe in suite.recipes:
        check_recipe(recipe, mlm=mlm)
    for model in suite.models:
        check_id(model.id, "suite")
        if model.path is not None:
            _check_patience(model, _num_layers_of_saved(model.path))
            continue
        target = resolve_inside(out, Path("models") / model.id)
        config = _train_config(model, suite, target)
        if (target / "train.json").is_file():
            _check_patience(model, _num_layers_of_saved(str(target)))
            continue
        check_train_out(target, overwrite=True)
        load_examples(config.dataset, config.train_split, data_dir=config.data_dir, limit=config.limit,
                      seed=config.seed)
        load_examples(config.dataset, config.eval_split, data_dir=config.data_dir, limit=config.eval_limit,
                      seed=config.seed)
        _check_patience(model, _num_layers_of_backbone(config.backbone))
    suite.run_specs({m.id: m.path or str(out / "models" / m.id) for m in suite.models}, calibrated=False)
    load_examples(suite.dataset, suite.split, data_dir=suite.data_dir, limit=suite.n, seed=suite.seed)
    check_report_out(out, overwrite)
