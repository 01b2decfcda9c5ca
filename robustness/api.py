"""One call per job: ``import robustness as rb``, then ``rb.train``, ``rb.evaluate``, ``rb.attack``,
``rb.transfer``, ``rb.trigger``, ``rb.quality``, ``rb.revalidate``, ``rb.aggregate``, ``rb.report`` and
``rb.bench``.

Each function is the one implementation of the ``robustness`` subcommand of the same name (the command parses its
flags, calls it and prints what it returns): it takes every flag of the command as a keyword argument of the same
name (``--batch-size`` -> ``batch_size``) with the same default, validates it the same way
(:mod:`robustness.requests`) and returns what the command writes: a model directory, the evaluation table, the
loaded run (:class:`Run`: spec, run.json, records as a DataFrame), the tables, the report's paths, or the bench's
outputs. Nothing is printed: progress bars appear only with ``progress=True`` and the lines a command prints
while it works go to ``log`` (a callable taking one line, e.g. ``print``; default: nowhere). ``resources``
names a resource bundle (default ``$ROBUSTNESS_RESOURCES``) whose parts fill the paths not given (``data_dir``,
``nltk_data``, ``lexicons``, ``mlm``, ``lm``), and with a bundle nothing is downloaded. ``device``: ``auto`` (the
first CUDA device if torch sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; recorded, never part of a
run's identity. Bad input raises a one-line ``ValueError``. Heavy libraries are imported by each call, not by
``import robustness``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustness.jobs import (
    StageBars,
    attack_resources,
    check_counts,
    check_out_file,
    chosen_setting,
    located,
    revalidate_runs,
    score_quality,
)
from robustness.pipeline import BenchResult, bench
from robustness.requests import COUNT_FLAGS
from robustness.schema.rundir import SPEC_FILE, is_run_dir
from robustness.schema.settings import parse_setting
from robustness.schema.specs import RunSpec, TransferSpec, VerdictOptions

if TYPE_CHECKING:
    import pandas as pd

    from robustness.analysis.runs import Run
    from robustness.schema.packing import Packed

__all__ = ["BenchResult", "Tables", "aggregate", "attack", "bench", "evaluate", "quality", "report", "revalidate",
           "train", "transfer", "trigger"]

PathLike = str | os.PathLike[str]
Paths = PathLike | Iterable[PathLike]


def _quiet(line: str) -> None:
    """The default ``log``: says nothing."""


def _paths(runs: Paths) -> list[Path]:
    return [Path(runs)] if isinstance(runs, str | os.PathLike) else [Path(r) for r in runs]


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


def quality(runs: Paths, *, lm: PathLike | None = None, batch_size: int | None = None, device: str = "auto",
            resources: PathLike | None = None, log: Callable[[str], Any] | None = None) -> dict[Path, int]:
    """Score the adversarial texts of every run under ``runs`` (perplexity under the causal ``lm``, similarity
    under the sentence encoder) into ``<run>/quality.jsonl``, resuming; returns run dir -> texts newly scored.
    ``batch_size`` None: 16 on the CPU, 64 on a GPU."""
    from robustness.analysis.runs import find_runs
    from robustness.devices import check_device

    check_counts(batch_size=batch_size)
    check_device(device)
    paths, _ = located(resources, lm=lm)
    run_dirs = find_runs(_paths(runs))
    if not run_dirs:
        raise ValueError(f"no runs under {' '.join(map(str, _paths(runs)))}")
    return score_quality(run_dirs, paths["lm"], batch_size, device=device, log=log)


def revalidate(runs: Paths, *, preset: str = "morris2020", lm: PathLike | None = None,
               sentence_encoder: PathLike | None = None, batch_size: int = 16, nltk_data: PathLike | None = None,
               lexicons: PathLike | None = None, cache_dir: PathLike | None = None,
               resources: PathLike | None = None, progress: bool = False, log: Callable[[str], Any] | None = None
               ) -> dict[Path, int]:
    """Re-check the successful adversarial texts of every run under ``runs`` against the ``preset``'s strict
    constraints (:mod:`robustness.revalidate`) into ``<run>/revalidation.jsonl``, resuming; returns run dir ->
    texts newly re-checked."""
    from robustness.analysis.runs import find_runs
    from robustness.revalidate import check_preset

    check_preset(preset)  # before anything loads
    check_counts(batch_size=batch_size)
    paths, _ = located(resources, lm=lm, nltk_data=nltk_data, lexicons=lexicons)
    run_dirs = find_runs(_paths(runs))
    if not run_dirs:
        raise ValueError(f"no runs under {' '.join(map(str, _paths(runs)))}")
    return revalidate_runs(run_dirs, preset, lm=paths["lm"], lexicons=paths["lexicons"],
                           nltk_data=paths["nltk_data"], cache_dir=cache_dir, sentence_encoder=sentence_encoder,
                           batch_size=batch_size, progress=progress, log=log)


@dataclasses.dataclass
class Tables:
    """What :func:`aggregate` computed (and wrote, with ``out``): the summary (one row per setting), the other
    tables by name (``exits``, ``flips``, ``quality`` when scored), the files written, and the runs left out
    because they are not complete."""

    summary: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    paths: dict[str, Path]
    left_out: list[Run]


def aggregate(runs: Paths, *, out: PathLike | None = None, overwrite: bool = False,
              log: Callable[[str], Any] | None = None) -> Tables:
    """The tables of the complete runs under ``runs`` (run dirs, ``runs/`` folders or suite outputs), written to
    ``<out>/tables/`` when ``out`` is given (a file not written by robustness is replaced only with
    ``overwrite``). Each run left out (not complete) and each file written is said to ``log``."""
    from robustness.analysis.aggregate import exit_table, flip_table, summarize
    from robustness.analysis.quality import quality_table
    from robustness.analysis.revalidation import revalidation_table
    from robustness.analysis.runs import load_runs
    from robustness.analysis.tables import write_tables

    found = load_runs(_paths(runs), include_incomplete=True)
    complete = [r for r in found if r.complete]
    if not complete:
        raise ValueError(f"no complete runs under {' '.join(map(str, _paths(runs)))}")
    left_out = [r for r in found if not r.complete]
    for run in left_out:
        (log or _quiet)(f"left out {run.run_id}: status {run.info.get('status') or 'unknown'}, "
                        f"{len(run.records)} records")
    summary = summarize(complete)
    extra = {"exits": exit_table(complete), "flips": flip_table(complete)}
    scored = quality_table(complete)
    if not scored.empty:
        extra["quality"] = scored
    strict = revalidation_table(summary)
    if not strict.empty:  # runs re-validated (robustness revalidate)
        extra["revalidation"] = strict
    written = write_tables(summary, Path(out), extra=extra, overwrite=overwrite) if out is not None else {}
    for path in written.values():
        (log or _quiet)(f"wrote {path}")
    return Tables(summary=summary, tables=extra, paths=written, left_out=left_out)


def report(runs: Paths, *, out: PathLike, overwrite: bool = False, margin: float = 0.01, min_n: int = 100,
           alpha: float = 0.05, setting: Any = None, clean_eval: Sequence[PathLike] | None = None,
           command: str | None = None, equivalence_margin: float = 0.05) -> tuple[Path, Path]:
    """Tables, figures, ``report.md`` and a self-contained ``report.html`` of the runs under ``runs`` into
    ``out``; returns ``(report.md, report.html)``. The verdict uses ``margin``/``min_n``/``alpha`` and the
    pre-registered ``setting`` (default: Holm-adjusted over every eligible setting) and equivalence margin δ
    (``equivalence_margin``); ``clean_eval``: clean tables off the attack sample (default: the ``clean/``
    folder beside each ``runs/``)."""
    from robustness.report import write_report

    check_counts(min_n=min_n)
    options = VerdictOptions(margin=margin, min_n=min_n, alpha=alpha, setting=setting,
                             equivalence_margin=equivalence_margin)
    clean = None
    if clean_eval:
        from robustness.analysis.verdict import read_clean_tables

        clean = read_clean_tables([Path(p) for p in clean_eval])
    return write_report(_paths(runs), Path(out), provenance={"command": command}, verdict_options=options,
                        clean=clean, overwrite=overwrite)


def pack(out: PathLike, *, into: PathLike, overwrite: bool = False) -> Packed:
    """Copy the finished runs, transfers, triggers and clean tables of the bench output ``out`` into the new
    directory ``into``, every ``.jsonl`` gzipped (:mod:`robustness.schema.packing`); ``aggregate`` and ``report``
    read ``into`` as they read ``out``. Returns what was packed (runs per part, sizes before and after)."""
    from robustness.schema.packing import pack_output

    return pack_output(Path(out), Path(into), overwrite=overwrite)


__all__ += ["pack"]  # robustness pack, in commands/pack.py
