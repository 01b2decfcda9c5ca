"""The model jobs of the façade (:mod:`robustness.api`): ``train`` fine-tunes a PABEE model or a full-depth
baseline (clean, or adversarially from a clean one), ``evaluate`` measures a saved model's clean accuracy, exit
depth and speed-up at every setting and calibrates thresholds."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustness.jobs import PathLike, StageBars, attack_resources, check_counts, check_out_file, located
from robustness.requests import COUNT_FLAGS
from robustness.schema.settings import parse_setting

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TRAIN_OPTIONS", "evaluate", "train"]


#: ``robustness train``'s training options: None takes TrainConfig's default, or (``init``) the init model's.
TRAIN_OPTIONS = ("dataset", "head", "pooling", "backbone", "epochs", "lr", "batch_size", "max_length", "warmup",
                 "seed", "limit", "eval_limit", "train_split", "eval_split")


def train(out: PathLike, *, dataset: str | None = None, head: str | None = None, pooling: str | None = None,
          backbone: str | None = None, epochs: int | None = None, lr: float | None = None,
          batch_size: int | None = None, max_length: int | None = None, warmup: float | None = None,
          seed: int | None = None, limit: int | None = None, eval_limit: int | None = None,
          train_split: str | None = None, eval_split: str | None = None, device: str = "auto",
          amp: str | None = None, checkpoint_every: int | None = None, overwrite: bool = False,
          adversarial: str | None = None, adversarial_goal: str = "accuracy", adv_ratio: float = 0.2,
          adv_setting: str | None = None, adv_query_budget: int | None = None, init: PathLike | None = None,
          data_dir: PathLike | None = None, nltk_data: PathLike | None = None, lexicons: PathLike | None = None,
          cache_dir: PathLike | None = None, mlm: PathLike | None = None, resources: PathLike | None = None,
          progress: bool = False, **options: Any) -> Path:
    """Fine-tune a PABEE model (``head="pabee"``) or a full-depth baseline (``"full"``) into ``out``; returns it.
    The training options left None take :class:`~robustness.models.train.TrainConfig`'s defaults; ``options``
    are its other fields (``weight_decay``). Resumable: a checkpoint every ``checkpoint_every`` optimizer steps
    (default: about every 10 minutes of work) is resumed by a call with the same options; ``overwrite`` replaces
    a model in ``out`` and starts afresh from a checkpoint made with other options. ``amp``: ``"bf16"`` or
    ``"fp16"`` autocast on CUDA. With ``adversarial`` (a recipe) and ``init`` (a clean model directory), an
    adversarial fine-tuning (A2T style): each epoch attacks ``adv_ratio`` of the training examples at
    ``adv_setting`` with the ``adversarial_goal`` and trains on them too; the training options default to
    ``init``'s."""
    from robustness.models.train import TrainConfig, train_model

    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"out", "data_dir", "device", "amp", *TRAIN_OPTIONS}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown training option(s) {', '.join(unknown)}: train takes the fields of "
                         "robustness.models.train.TrainConfig as keywords")
    named = {"dataset": dataset, "head": head, "pooling": pooling, "backbone": backbone, "epochs": epochs, "lr": lr,
             "batch_size": batch_size, "max_length": max_length, "warmup": warmup, "seed": seed, "limit": limit,
             "eval_limit": eval_limit, "train_split": train_split, "eval_split": eval_split}
    check_counts(**{k: v for k, v in named.items() if k in COUNT_FLAGS})
    given = {name: value for name, value in {**named, **options}.items() if value is not None}
    if adversarial is None and init is None:
        paths, _ = located(resources, data_dir=data_dir, nltk_data=nltk_data, lexicons=lexicons, mlm=mlm)
        config = TrainConfig(out=os.fspath(out), data_dir=paths["data_dir"], device=device, amp=amp, **given)
        return train_model(config, progress=progress, overwrite=overwrite, checkpoint_every=checkpoint_every)
    from robustness.attack.adversarial_options import AdversarialOptions, adversarial_config, check_adversarial

    if adversarial is None:  # every option is checked before any model loads
        raise ValueError("--init starts an adversarial fine-tuning: add --adversarial RECIPE (e.g. a2t)")
    if init is None:
        raise ValueError("--adversarial fine-tunes a trained model: pass --init MODEL_DIR (a clean model)")
    chosen = AdversarialOptions(recipe=adversarial, init=os.fspath(init), goal=adversarial_goal, ratio=adv_ratio,
                                setting=adv_setting, query_budget=adv_query_budget)
    paths, offline = located(resources, data_dir=data_dir, nltk_data=nltk_data, lexicons=lexicons, mlm=mlm)
    check_adversarial(chosen, mlm=paths["mlm"])
    config = adversarial_config(chosen.init, given, out=os.fspath(out), data_dir=paths["data_dir"], device=device,
                                amp=amp)
    stack = attack_resources(paths, cache_dir, offline)
    from robustness.attack.adversarial_training import train_adversarial

    return train_adversarial(config, chosen, resources=stack, progress=progress, overwrite=overwrite,
                             checkpoint_every=checkpoint_every)


def evaluate(model: PathLike, *, dataset: str = "glue/sst2", split: str = "validation", out: PathLike | None = None,
             batch_size: int | None = None, device: str = "auto", max_length: int = 128, limit: int | None = None,
             seed: int = 0, timing_repeats: int = 3, match_patience: Sequence[Any] | None = None,
             match_speedup: Sequence[float] | None = None, overwrite: bool = False, data_dir: PathLike | None = None,
             resources: PathLike | None = None, progress: bool = False) -> pd.DataFrame:
    """Clean accuracy, exit depth and speed-up of the saved ``model`` at every patience and full depth (one row
    per setting; :data:`~robustness.models.evaluate.EVAL_COLUMNS`), written to the CSV ``out`` when given.
    ``match_patience`` (settings) and ``match_speedup`` (layer speed-ups) add entropy and max-probability rows at
    the matching thresholds, recorded in ``<model>/calibration.json``. ``timing_repeats=0`` skips timing;
    ``batch_size`` None: 32 on the CPU, 128 on a GPU."""
    from robustness.data import load_examples
    from robustness.devices import check_device, default_batch_size, use_device
    from robustness.models.evaluate import evaluate_model, timed_repetitions
    from robustness.models.pabee import check_model_dir, load_model_and_tokenizer
    from robustness.models.saved import saved_facts
    from robustness.provenance import write_csv_atomic
    from robustness.requests import check_calibration_target

    check_counts(batch_size=batch_size, max_length=max_length, limit=limit, timing_repeats=timing_repeats)
    check_device(device)
    paths, _ = located(resources, data_dir=data_dir)
    if out is not None:
        check_out_file(Path(out), overwrite)
    check_model_dir(model)
    facts = saved_facts(model)  # a match the model cannot reach is refused before any work
    for flag, values in (("--match-patience", match_patience), ("--match-speedup", match_speedup)):
        for value in values or ():
            check_calibration_target(str(value), num_layers=facts.num_layers, head=facts.head,
                                     where=f"{flag} {value} ({model})", setting=flag == "--match-patience")
    where = use_device(device)
    examples = load_examples(dataset, split, data_dir=paths["data_dir"], limit=limit, seed=seed)
    net, tokenizer = load_model_and_tokenizer(model)
    net = net.to(where)
    match = [*(parse_setting(x).label for x in match_patience or ()), *(str(float(x)) for x in match_speedup or ())]
    with StageBars(progress) as bars:
        table = evaluate_model(net, tokenizer, examples.texts, examples.labels,
                               batch_size=batch_size or default_batch_size(where), max_length=max_length,
                               timing_repeats=timing_repeats,
                               progress=bars.counter("all-layer pass", len(examples), "ex"),
                               timing_progress=bars.counter("timing early exit vs full depth", timed_repetitions(
                                   net, timing_repeats, len(match)), "rep"), match=match)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_csv_atomic(Path(out), table)
    if match:
        from robustness.models.calibrate import write_calibration

        where_drawn = {"dataset": dataset, "split": split, "n": len(examples), "seed": seed}
        write_calibration(model, [{"reference": ref, **row, **where_drawn} for _, row in table.iterrows()
                                  for ref in str(row["calibration"]).split() if ref])
    return table
