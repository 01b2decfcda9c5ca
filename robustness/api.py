"""One call per job: ``import robustness as rb``, then ``rb.train``, ``rb.evaluate``, ``rb.attack``,
``rb.transfer``, ``rb.trigger``, ``rb.quality``, ``rb.revalidate``, ``rb.aggregate``, ``rb.report`` and
``rb.bench``.

Each function does what the ``robustness`` subcommand of the same name does, with the same defaults, and returns
what the command writes: a model directory, the evaluation table, the loaded run (:class:`Run`: spec, run.json,
records as a DataFrame), the tables, the report's paths, or the bench's outputs. Nothing is printed; progress bars
appear only with ``progress=True`` (the commands pass it). Keyword arguments mirror the command's flags
(``--batch-size`` -> ``batch_size``); ``resources`` names a resource bundle (default ``$ROBUSTNESS_RESOURCES``)
whose parts fill the paths not given (``data_dir``, ``nltk_data``, ``lexicons``, ``mlm``, ``lm``), and with a
bundle nothing is downloaded. Bad input raises ``ValueError``. Heavy libraries are imported by each call, not by
``import robustness``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustness.jobs import StageBars, attack_resources, check_out_file, located
from robustness.pipeline import BenchResult, bench
from robustness.schema.rundir import SPEC_FILE, is_run_dir
from robustness.schema.specs import RunSpec, TransferSpec, VerdictOptions

if TYPE_CHECKING:
    import pandas as pd

    from robustness.analysis.runs import Run
    from robustness.schema.packing import Packed

__all__ = ["BenchResult", "Tables", "aggregate", "attack", "bench", "evaluate", "quality", "report", "revalidate",
           "train", "transfer", "trigger"]

PathLike = str | os.PathLike[str]
Paths = PathLike | Iterable[PathLike]


def _paths(runs: Paths) -> list[Path]:
    return [Path(runs)] if isinstance(runs, str | os.PathLike) else [Path(r) for r in runs]


def train(out: PathLike, *, dataset: str = "glue/sst2", head: str = "pabee", backbone: str | None = None,
          data_dir: PathLike | None = None, resources: PathLike | None = None, overwrite: bool = False,
          progress: bool = False, **options: Any) -> Path:
    """Fine-tune a PABEE model (``head="pabee"``) or a full-depth baseline (``"full"``) into ``out``; returns it.
    ``options`` are the other fields of :class:`~robustness.models.train.TrainConfig` (``epochs``, ``lr``,
    ``batch_size``, ``max_length``, ``warmup``, ``seed``, ``limit``, ``eval_limit``, ``pooling``, ...)."""
    from robustness.models.train import TrainConfig, train_model

    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"out", "dataset", "head", "backbone", "data_dir"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown training option(s) {', '.join(unknown)}: train takes the fields of "
                         "robustness.models.train.TrainConfig as keywords")
    paths, _ = located(resources, data_dir=data_dir)
    config = TrainConfig(out=os.fspath(out), dataset=dataset, head=head, backbone=backbone,
                         data_dir=paths["data_dir"], **options)
    return train_model(config, progress=progress, overwrite=overwrite)


def evaluate(model: PathLike, *, dataset: str = "glue/sst2", split: str = "validation", out: PathLike | None = None,
             limit: int | None = None, seed: int = 0, batch_size: int = 32, max_length: int = 128,
             timing_repeats: int = 3, match_patience: Sequence[Any] = (), match_speedup: Sequence[float] = (),
             data_dir: PathLike | None = None, resources: PathLike | None = None, overwrite: bool = False,
             progress: bool = False) -> pd.DataFrame:
    """Clean accuracy, exit depth and speed-up of the saved ``model`` at every patience and full depth (one row
    per setting; :data:`~robustness.models.evaluate.EVAL_COLUMNS`), written to the CSV ``out`` when given.
    ``match_patience`` (settings) and ``match_speedup`` (layer speed-ups) add entropy and max-probability rows at
    the matching thresholds, recorded in ``<model>/calibration.json``. ``timing_repeats=0`` skips timing."""
    from robustness.data import load_examples
    from robustness.models.evaluate import evaluate_model, timed_repetitions
    from robustness.models.pabee import check_model_dir, load_model_and_tokenizer
    from robustness.provenance import write_csv_atomic
    from robustness.schema.settings import parse_setting

    paths, _ = located(resources, data_dir=data_dir)
    if out is not None:
        check_out_file(Path(out), overwrite)
    check_model_dir(model)
    match = [*(parse_setting(x).label for x in match_patience), *(str(float(x)) for x in match_speedup)]
    examples = load_examples(dataset, split, data_dir=paths["data_dir"], limit=limit, seed=seed)
    net, tokenizer = load_model_and_tokenizer(model)
    with StageBars(progress) as bars:
        table = evaluate_model(net, tokenizer, examples.texts, examples.labels, batch_size=batch_size,
                               max_length=max_length, timing_repeats=timing_repeats,
                               progress=bars.counter("all-layer pass", len(examples), "ex"),
                               timing_progress=bars.counter("timing early exit vs full depth", timed_repetitions(
                                   net, timing_repeats, len(match)), "rep"), match=match)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_csv_atomic(Path(out), table)
    if match:
        from robustness.models.calibrate import write_calibration

        where = {"dataset": dataset, "split": split, "n": len(examples), "seed": seed}
        write_calibration(model, [{"reference": ref, **row, **where} for _, row in table.iterrows()
                                  for ref in str(row["calibration"]).split() if ref])
    return table


def attack(model: PathLike, recipe: str, *, out: PathLike, setting: Any = "full", dataset: str = "glue/sst2",
           split: str = "validation", n: int = 100, seed: int = 0, query_budget: int | None = None,
           batch_size: int = 32, max_length: int = 128, stock: bool = False, goal: str = "accuracy",
           goal_target: int | None = None, keep_prediction: bool = False, model_id: str | None = None,
           data_dir: PathLike | None = None, nltk_data: PathLike | None = None, lexicons: PathLike | None = None,
           cache_dir: PathLike | None = None, mlm: PathLike | None = None, resources: PathLike | None = None,
           overwrite: bool = False, progress: bool = False, command: str | None = None) -> Run:
    """Attack ``n`` examples of ``dataset`` with ``recipe`` against the saved ``model`` at exit ``setting``
    (``"patience:2"``, ``2``, ``"entropy:0.3"``, ``"maxprob:0.9"``, ``"full"``) into the run directory ``out``
    (resumed if it holds this run); returns the complete run. ``goal="slowdown"`` pushes exits deeper."""
    from robustness.analysis.runs import load_run

    paths, offline = located(resources, data_dir=data_dir, nltk_data=nltk_data, lexicons=lexicons, mlm=mlm)
    stack = attack_resources(paths, cache_dir, offline)
    from robustness.attack.runner import run_attack

    spec = RunSpec(model_id=model_id or Path(model).name, model_dir=os.fspath(model), recipe=recipe,
                   dataset=dataset, setting=setting, split=split, n=n, seed=seed, query_budget=query_budget,
                   batch_size=batch_size, max_length=max_length, stock=stock, data_dir=paths["data_dir"], goal=goal,
                   goal_target=goal_target, keep_prediction=keep_prediction)
    return load_run(run_attack(spec, Path(out), resources=stack, progress=progress, command=command,
                               overwrite=overwrite))


def transfer(run: PathLike, model: PathLike, *, out: PathLike, setting: Any = "full", batch_size: int = 32,
             max_length: int = 128, model_id: str | None = None, nltk_data: PathLike | None = None,
             lexicons: PathLike | None = None, cache_dir: PathLike | None = None, mlm: PathLike | None = None,
             resources: PathLike | None = None, command: str | None = None) -> Run:
    """Replay the final texts of the complete attack ``run`` against the saved ``model`` at ``setting`` into the
    transfer directory ``out`` (resumed if it holds this transfer); returns it, loaded."""
    from robustness.analysis.runs import load_run
    from robustness.provenance import read_json_object

    paths, offline = located(resources, nltk_data=nltk_data, lexicons=lexicons, mlm=mlm)
    attack_resources(paths, cache_dir, offline)
    from robustness.attack.transfer import run_transfer

    source = Path(run)
    if not is_run_dir(source):
        raise ValueError(f"{source} is not a run directory ({SPEC_FILE} missing)")
    spec = TransferSpec(source_run=str(source), source_run_id=str(read_json_object(source / SPEC_FILE).get(
        "run_id", source.name)), model_id=model_id or Path(model).name, model_dir=os.fspath(model), setting=setting,
        batch_size=batch_size, max_length=max_length)
    return load_run(run_transfer(spec, Path(out), command=command))


def trigger(model: PathLike, setting: Any | Sequence[Any], *, out: PathLike | None = None,
            replay: PathLike | None = None, length: int = 3, dataset: str = "glue/sst2", train_split: str = "train",
            train_n: int = 64, split: str = "validation", n: int = 100, seed: int = 0, candidates: int = 50,
            iterations: int = 2, beam: int = 1, vocabulary: str = "tokenizer", score: str = "exit",
            batch_size: int = 32, max_length: int = 128, model_id: str | None = None, data_dir: PathLike | None = None,
            nltk_data: PathLike | None = None, resources: PathLike | None = None, overwrite: bool = False,
            progress: bool = False, command: str | None = None) -> pd.DataFrame:
    """Search a universal slowdown trigger on the saved ``model`` at the first of ``setting`` (one setting or a
    list; every one is evaluated) into the trigger directory ``out`` (continued if it holds this search), or with
    ``replay`` (a finished trigger directory) evaluate that trigger on ``model`` at ``setting``; returns the
    directory's evaluation rows (:mod:`robustness.schema.triggers`)."""
    import pandas as pd

    settings = [setting] if isinstance(setting, str | int) or setting is None else list(setting)
    if not settings or settings[0] is None:
        raise ValueError("trigger needs a setting (e.g. setting='patience:2')")
    paths, offline = located(resources, data_dir=data_dir, nltk_data=nltk_data)
    attack_resources(paths, None, offline)
    from robustness.attack.trigger import TriggerSpec, read_rows, replay_trigger, resolve_setting, run_trigger

    if replay is not None:
        if out is not None:
            raise ValueError("replay writes into the trigger directory it replays; drop out")
        replay_trigger(Path(replay), os.fspath(model), [str(s) for s in settings], batch_size=batch_size,
                       max_length=max_length, data_dir=paths["data_dir"])
        return pd.DataFrame(read_rows(replay))
    if out is None:
        raise ValueError("trigger needs out (a trigger directory), or replay")
    spec = TriggerSpec(model_id=model_id or Path(model).name, model_dir=os.fspath(model),
                       setting=resolve_setting(str(settings[0]), model).label, length=length, dataset=dataset,
                       train_split=train_split, train_n=train_n, split=split, n=n, seed=seed, candidates=candidates,
                       iterations=iterations, beam=beam, vocabulary=vocabulary, score=score, batch_size=batch_size,
                       max_length=max_length, data_dir=paths["data_dir"])
    where = run_trigger(spec, Path(out), evaluate_on=[str(s) for s in settings[1:]], command=command,
                        overwrite=overwrite, progress=progress)
    return pd.DataFrame(read_rows(where))


def quality(runs: Paths, *, lm: PathLike | None = None, batch_size: int = 16,
            resources: PathLike | None = None) -> dict[Path, int]:
    """Score the adversarial texts of every run under ``runs`` (perplexity under the causal ``lm``, similarity
    under the sentence encoder) into ``<run>/quality.jsonl``, resuming; returns run dir -> texts newly scored."""
    from robustness.analysis.runs import find_runs
    from robustness.quality import load_lm, score_run

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    paths, _ = located(resources, lm=lm)
    run_dirs = find_runs(_paths(runs))
    model, known = load_lm(paths["lm"]), {}  # a text's perplexity is computed once for all runs
    return {run_dir: score_run(run_dir, model, batch_size=batch_size, known=known) for run_dir in run_dirs}


def revalidate(runs: Paths, *, preset: str = "morris2020", lm: PathLike | None = None,
               sentence_encoder: PathLike | None = None, nltk_data: PathLike | None = None,
               lexicons: PathLike | None = None, cache_dir: PathLike | None = None, batch_size: int = 16,
               resources: PathLike | None = None) -> dict[Path, int]:
    """Re-check the successful adversarial texts of every run under ``runs`` against the ``preset``'s strict
    constraints (:mod:`robustness.revalidate`) into ``<run>/revalidation.jsonl``, resuming; returns run dir ->
    texts newly re-checked."""
    from robustness.analysis.runs import find_runs
    from robustness.revalidate import check_preset, load_checkers, revalidate_run

    chosen = check_preset(preset)
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    paths, _ = located(resources, lm=lm, nltk_data=nltk_data, lexicons=lexicons)
    run_dirs = find_runs(_paths(runs))
    checkers = load_checkers(paths["lm"], lexicons=paths["lexicons"], nltk_data=paths["nltk_data"],
                             cache_dir=cache_dir, sentence_encoder=sentence_encoder)
    known: dict[str, float] = {}  # a text's perplexity is computed once for all runs
    return {run_dir: revalidate_run(run_dir, checkers, chosen, batch_size=batch_size, known=known)
            for run_dir in run_dirs}


@dataclasses.dataclass
class Tables:
    """What :func:`aggregate` computed (and wrote, with ``out``): the summary (one row per setting), the other
    tables by name (``exits``, ``flips``, ``quality`` when scored), the files written, and the runs left out
    because they are not complete."""

    summary: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    paths: dict[str, Path]
    left_out: list[Run]


def aggregate(runs: Paths, *, out: PathLike | None = None, overwrite: bool = False) -> Tables:
    """The tables of the complete runs under ``runs`` (run dirs, ``runs/`` folders or suite outputs), written to
    ``<out>/tables/`` when ``out`` is given (a file not written by robustness is replaced only with
    ``overwrite``)."""
    from robustness.analysis.aggregate import exit_table, flip_table, summarize
    from robustness.analysis.quality import quality_table
    from robustness.analysis.revalidation import revalidation_table
    from robustness.analysis.runs import load_runs
    from robustness.analysis.tables import write_tables

    found = load_runs(_paths(runs), include_incomplete=True)
    complete = [r for r in found if r.complete]
    if not complete:
        raise ValueError(f"no complete runs under {' '.join(map(str, _paths(runs)))}")
    summary = summarize(complete)
    extra = {"exits": exit_table(complete), "flips": flip_table(complete)}
    scored = quality_table(complete)
    if not scored.empty:
        extra["quality"] = scored
    strict = revalidation_table(summary)
    if not strict.empty:  # runs re-validated (robustness revalidate)
        extra["revalidation"] = strict
    written = write_tables(summary, Path(out), extra=extra, overwrite=overwrite) if out is not None else {}
    return Tables(summary=summary, tables=extra, paths=written, left_out=[r for r in found if not r.complete])


def report(runs: Paths, *, out: PathLike, margin: float = 0.01, min_n: int = 100, alpha: float = 0.05,
           setting: Any = None, clean_eval: Sequence[PathLike] | None = None, overwrite: bool = False,
           command: str | None = None, equivalence_margin: float = 0.05) -> tuple[Path, Path]:
    """Tables, figures, ``report.md`` and a self-contained ``report.html`` of the runs under ``runs`` into
    ``out``; returns ``(report.md, report.html)``. The verdict uses ``margin``/``min_n``/``alpha`` and the
    pre-registered ``setting`` (default: Holm-adjusted over every eligible setting) and equivalence margin δ
    (``equivalence_margin``); ``clean_eval``: clean tables off the attack sample (default: the ``clean/``
    folder beside each ``runs/``)."""
    from robustness.report import write_report

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
