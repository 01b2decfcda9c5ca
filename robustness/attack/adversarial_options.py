"""What an adversarial fine-tuning is (``robustness train --adversarial``): :class:`AdversarialOptions`, checked
before any work, and the :class:`~robustness.models.train_config.TrainConfig` it trains with, inherited from the
clean model it starts from (``--init``) so that both trainings see the same data, hyperparameters and optimizer
step budget. The loop is :mod:`robustness.attack.adversarial_training`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ADVERSARIAL_GOALS", "AdversarialOptions", "adversarial_config", "check_adversarial", "check_against_init",
           "check_options", "clean_budget", "init_record"]

ADVERSARIAL_GOALS = ("accuracy", "slowdown")
#: training options a fine-tuning takes from its ``--init`` model unless given (its model decides the rest)
INHERITED = ("dataset", "epochs", "lr", "batch_size", "max_length", "warmup", "weight_decay", "seed", "limit",
             "eval_limit", "train_split", "eval_split")
#: options that the ``--init`` model fixes: given explicitly, they are an error
FROM_INIT = ("head", "pooling", "backbone")


@dataclass(frozen=True)
class AdversarialOptions:
    """``recipe``: the attack (a recipe of :mod:`robustness.attack.recipes`); ``goal``: ``accuracy`` (flip the
    prediction) or ``slowdown`` (push the exit to the last layer); ``ratio``: the fraction R in (0, 1] of the
    training examples attacked each epoch; ``setting``: the exit setting the attack targets (None: ``full`` for
    the accuracy goal, ``patience:2`` for slowdown); ``query_budget``: per attacked example (None: the
    recipe's); ``init``: the clean model directory the fine-tuning starts from."""

    recipe: str
    init: str
    goal: str = "accuracy"
    ratio: float = 0.2
    setting: str | None = None
    query_budget: int | None = None

    @property
    def attack_setting(self) -> str:
        from robustness.schema.settings import parse_setting

        default = "patience:2" if self.goal == "slowdown" else "full"
        return parse_setting(self.setting or default).label

    def identity(self, init_fingerprint: str) -> dict[str, Any]:
        """What a checkpoint of this fine-tuning must match to be resumed (beside the training options)."""
        return {"adversarial": self.recipe, "adversarial_goal": self.goal, "adv_ratio": self.ratio,
                "adv_setting": self.attack_setting, "adv_query_budget": self.query_budget,
                "init_fingerprint": init_fingerprint}


def check_adversarial(options: AdversarialOptions, *, mlm: str | None = None) -> None:
    """Everything that can be refused before any model loads, each a one-line ``ValueError`` naming the flag:
    an unknown recipe or goal, R outside (0, 1], a missing or non-model ``--init``, the slowdown goal on a
    full-depth baseline, an attack setting the init model cannot reach."""
    from robustness.models.saved import saved_facts

    if not options.init:
        raise ValueError("--adversarial fine-tunes a trained model: pass --init MODEL_DIR (a clean model)")
    check_options(options, mlm=mlm)
    facts = saved_facts(options.init)  # ValueError naming the directory if it holds no whole model
    check_against_init(options, num_layers=facts.num_layers, head=facts.head, where=f"--init {options.init}")


def check_options(options: AdversarialOptions, *, mlm: str | None = None) -> None:
    """The options on their own: a known recipe and goal, R in (0, 1], a query budget >= 1."""
    from robustness.attack.recipes import check_recipe

    try:
        check_recipe(options.recipe, mlm=mlm)
    except ValueError as exc:
        raise ValueError(f"--adversarial: {exc}") from None
    if options.goal not in ADVERSARIAL_GOALS:
        raise ValueError(f"--adversarial-goal must be accuracy or slowdown, got {options.goal!r}")
    ratio = options.ratio
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not (math.isfinite(ratio) and 0 < ratio <= 1):
        raise ValueError(f"--adv-ratio must be a fraction in (0, 1] of the training examples, got {ratio!r}")
    if options.query_budget is not None and (isinstance(options.query_budget, bool)
                                             or not isinstance(options.query_budget, int) or options.query_budget < 1):
        raise ValueError(f"--adv-query-budget must be an integer >= 1, got {options.query_budget!r}")


def check_against_init(options: AdversarialOptions, *, num_layers: int, head: str, where: str) -> None:
    """The options on an init model of ``num_layers`` layers and ``head`` (``where`` names it): the slowdown
    goal needs a pabee model, the attack setting must be reachable."""
    from robustness.requests import check_run_request

    if options.goal == "slowdown" and head != "pabee":
        raise ValueError(f"--adversarial-goal slowdown: {where} is a full-depth baseline (every text exits at the "
                         "last layer); use a pabee model or the accuracy goal")
    check_run_request(options.attack_setting, num_layers=num_layers, head=head, where=f"--adv-setting on {where}",
                      goal=options.goal)


def init_record(init: str | Path) -> dict[str, Any] | None:
    """The ``train.json`` of the init model (None for a model without one, e.g. an imported checkpoint)."""
    from robustness.provenance import read_json_object

    path = Path(init) / "train.json"
    return read_json_object(path) if path.is_file() else None


def clean_budget(record: dict[str, Any] | None) -> int | None:
    """Optimizer steps of the clean training that made the init model: Σ over its epochs of the steps run
    (``history[*].steps``); None when unknown."""
    if not record or not record.get("history"):
        return None
    return int(sum(int(epoch["steps"]) for epoch in record["history"]))


def adversarial_config(init: str | Path, given: dict[str, Any], **fixed: Any) -> Any:
    """The :class:`TrainConfig` of a fine-tuning from ``init``: each option of :data:`INHERITED` as ``given``
    (explicit flags or suite keys, None = not given), else as the init model's ``train.json`` recorded it, else
    the default; head and pooling are the init model's, the backbone its recorded one (recorded only).
    ``fixed``: ``out``, ``device``, ``amp``, ``data_dir``."""
    from robustness.models.saved import saved_facts
    from robustness.models.train_config import TrainConfig
    from robustness.provenance import read_json_object

    for name in FROM_INIT:
        if given.get(name) is not None:
            raise ValueError(f"--{name} comes from --init {init}; leave it out of an adversarial fine-tuning")
    record = init_record(init) or {}
    recorded = record.get("config", {})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: recorded[k] for k in INHERITED if k in recorded and k in names}
    values.update({k: v for k, v in given.items() if v is not None and k in INHERITED})
    model_config = read_json_object(Path(init) / "config.json")
    values["head"] = saved_facts(init).head
    values["pooling"] = str(model_config.get("pooling") or recorded.get("pooling") or "cls")
    values["backbone"] = recorded.get("backbone")
    return TrainConfig(**values, **fixed)
