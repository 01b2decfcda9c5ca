"""The attack jobs of the façade (:mod:`robustness.api`): ``attack`` runs one recipe against a saved model at one
exit setting, ``transfer`` replays a finished attack's texts on another model or setting, ``trigger`` searches (or
replays) a universal slowdown trigger."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustness.jobs import PathLike, attack_resources, check_counts, chosen_setting, located
from robustness.schema.rundir import SPEC_FILE, is_run_dir
from robustness.schema.specs import RunSpec, TransferSpec

if TYPE_CHECKING:
    import pandas as pd

    from robustness.analysis.runs import Run

__all__ = ["attack", "transfer", "trigger"]


def attack(model: PathLike, recipe: str, *, out: PathLike, setting: Any = None, patience: Any = None,
           dataset: str = "glue/sst2", split: str = "validation", n: int = 100, seed: int = 0,
           query_budget: int | None = None, batch_size: int = 32, max_length: int = 128, device: str = "auto",
           stock: bool = False, goal: str = "accuracy", goal_target: int | None = None, keep_prediction: bool = False,
           slowdown_score: str = "exit", sentence_encoder: str | None = None, model_id: str | None = None,
           data_dir: PathLike | None = None, nltk_data: PathLike | None = None, lexicons: PathLike | None = None,
           cache_dir: PathLike | None = None, mlm: PathLike | None = None, resources: PathLike | None = None,
           overwrite: bool = False, progress: bool = False, command: str | None = None) -> Run:
    """Attack ``n`` examples of ``dataset`` with ``recipe`` against the saved ``model`` at exit ``setting``
    (``"patience:2"``, ``2``, ``"entropy:0.3"``, ``"maxprob:0.9"``, ``"full"``; default full; ``patience=P`` is
    its shorthand) into the run directory ``out`` (resumed if it holds this run; ``overwrite`` starts afresh);
    returns the complete run. ``goal="slowdown"`` pushes exits deeper (to ``goal_target``, default L), guided by
    ``slowdown_score`` (``exit``, ``waffle``, ``oavg``); ``sentence_encoder``: ``use-m3`` or ``minilm``."""
    from robustness.analysis.runs import load_run
    from robustness.devices import check_device, use_device
    from robustness.schema.specs import check_goal

    check_counts(n=n, query_budget=query_budget, batch_size=batch_size, max_length=max_length,
                 goal_target=goal_target)
    if goal != "slowdown" and slowdown_score != "exit":  # before any model or resource is loaded
        raise ValueError(f"--slowdown-score {slowdown_score} needs --goal slowdown")
    check_goal(goal, goal_target, keep_prediction, slowdown_score)
    check_device(device)
    chosen = chosen_setting(setting, patience)
    paths, offline = located(resources, data_dir=data_dir, nltk_data=nltk_data, lexicons=lexicons, mlm=mlm)
    stack = attack_resources(paths, cache_dir, offline)
    from robustness.attack.runner import run_attack

    spec = RunSpec(model_id=model_id or Path(model).name, model_dir=os.fspath(model), recipe=recipe,
                   dataset=dataset, setting=chosen.label, split=split, n=n, seed=seed, query_budget=query_budget,
                   batch_size=batch_size, max_length=max_length, stock=stock, data_dir=paths["data_dir"], goal=goal,
                   goal_target=goal_target, keep_prediction=keep_prediction, slowdown_score=slowdown_score,
                   device=device, sentence_encoder=sentence_encoder)
    use_device(spec.device)  # the recipe's sentence encoder loads there too
    return load_run(run_attack(spec, Path(out), resources=stack, progress=progress, command=command,
                               overwrite=overwrite))


def transfer(run: PathLike, model: PathLike, *, out: PathLike, setting: Any = "full", batch_size: int = 32,
             max_length: int = 128, device: str = "auto", model_id: str | None = None,
             nltk_data: PathLike | None = None, lexicons: PathLike | None = None, cache_dir: PathLike | None = None,
             mlm: PathLike | None = None, resources: PathLike | None = None, command: str | None = None) -> Run:
    """Replay the final texts of the complete attack ``run`` against the saved ``model`` at ``setting`` into the
    transfer directory ``out`` (resumed if it holds this transfer); returns it, loaded."""
    from robustness.analysis.runs import load_run
    from robustness.devices import check_device
    from robustness.provenance import read_json_object

    check_counts(batch_size=batch_size, max_length=max_length)
    chosen_setting(setting)  # a bad setting, named before any load
    check_device(device)
    paths, offline = located(resources, nltk_data=nltk_data, lexicons=lexicons, mlm=mlm)
    attack_resources(paths, cache_dir, offline)
    from robustness.attack.transfer import run_transfer

    source = Path(run)
    if not is_run_dir(source):
        raise ValueError(f"{source} is not a run directory ({SPEC_FILE} missing)")
    spec = TransferSpec(source_run=str(source), source_run_id=str(read_json_object(source / SPEC_FILE).get(
        "run_id", source.name)), model_id=model_id or Path(model).name, model_dir=os.fspath(model), setting=setting,
        batch_size=batch_size, max_length=max_length, device=device)
    return load_run(run_transfer(spec, Path(out), command=command))


def trigger(model: PathLike, setting: Any | Sequence[Any] = None, *, replay: PathLike | None = None,
            length: int = 3, dataset: str = "glue/sst2", train_split: str = "train", train_n: int = 64,
            split: str = "validation", n: int = 100, seed: int = 0, candidates: int = 50, iterations: int = 2,
            beam: int = 1, vocabulary: str = "tokenizer", score: str = "exit", batch_size: int = 32,
            max_length: int = 128, out: PathLike | None = None, overwrite: bool = False, model_id: str | None = None,
            data_dir: PathLike | None = None, nltk_data: PathLike | None = None, lexicons: PathLike | None = None,
            cache_dir: PathLike | None = None, mlm: PathLike | None = None, resources: PathLike | None = None,
            progress: bool = False, command: str | None = None) -> pd.DataFrame:
    """Search a universal slowdown trigger on the saved ``model`` at the first of ``setting`` (one setting or a
    list; every one is evaluated) into the trigger directory ``out`` (continued if it holds this search), or with
    ``replay`` (a finished trigger directory) evaluate that trigger on ``model`` at each ``setting`` (a setting
    already evaluated there is skipped); returns the directory's evaluation rows
    (:mod:`robustness.schema.triggers`), those a replay added last (their number in ``.attrs["added"]``)."""
    import pandas as pd

    check_counts(n=n, batch_size=batch_size, max_length=max_length)
    paths, offline = located(resources, data_dir=data_dir, nltk_data=nltk_data, lexicons=lexicons, mlm=mlm)
    settings = [setting] if isinstance(setting, str | int) or setting is None else list(setting)
    settings = [str(s) for s in settings if s is not None]
    if not settings:
        raise ValueError("robustness trigger needs --setting (e.g. --setting patience:2)")
    from robustness.models.pabee import check_model_dir

    check_model_dir(model)
    attack_resources(paths, cache_dir, offline)  # TextAttack imported offline-safely before the slowdown score's
    from robustness.attack.trigger import TriggerSpec, read_rows, replay_trigger, resolve_setting, run_trigger

    if replay is not None:
        if out is not None:
            raise ValueError("--replay writes into the trigger directory it replays; drop --out")
        added = replay_trigger(Path(replay), os.fspath(model), settings, batch_size=batch_size,
                               max_length=max_length, data_dir=paths["data_dir"])
        rows = pd.DataFrame(read_rows(replay))
        rows.attrs["added"] = len(added)
        return rows
    if out is None:
        raise ValueError("robustness trigger needs --out DIR (or --replay DIR); rb.trigger needs out= (or replay=)")
    spec = TriggerSpec(model_id=model_id or Path(model).name, model_dir=os.fspath(model),
                       setting=resolve_setting(settings[0], model).label, length=length, dataset=dataset,
                       train_split=train_split, train_n=train_n, split=split, n=n, seed=seed, candidates=candidates,
                       iterations=iterations, beam=beam, vocabulary=vocabulary, score=score, batch_size=batch_size,
                       max_length=max_length, data_dir=paths["data_dir"])
    where = run_trigger(spec, Path(out), evaluate_on=settings[1:], command=command, overwrite=overwrite,
                        progress=progress)
    return pd.DataFrame(read_rows(where))
