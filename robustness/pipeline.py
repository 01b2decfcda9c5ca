"""A suite end to end (``rb.bench``, ``robustness bench``): validate, train what is missing, calibrate, plan,
attack on the chosen engine, then transfers, clean tables, quality and the report; resumable, or one
``part=(i, k)`` of its attacks (no report).

The stages themselves live in :mod:`robustness.suite` (:mod:`~robustness.suite.stages`,
:mod:`~robustness.suite.plan`, :mod:`~robustness.suite.executors`); this module chains them. What it has to say
while it works goes to ``log`` (a callable taking one line, e.g. ``print``; default: nowhere). ``robustness bench``
parses its flags and calls :func:`bench` with ``log=print`` and progress bars on.

Each stage it runs (train, calibrate, preregister, attacks, transfers, triggers, clean, quality, revalidate,
report) appends its wall and CPU time to ``<out>/timings.jsonl`` when it ends, also when stopped or failed
(:mod:`robustness.suite.timings`; the format in :mod:`robustness.schema.timings`). Stages with nothing left to
do (a resumed suite) record about no time; validation, planning and the run bookkeeping are not timed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustness.jobs import attack_resources, located, revalidate_runs, score_quality

__all__ = ["BenchResult", "bench"]

PathLike = str | os.PathLike[str]


@dataclasses.dataclass
class BenchResult:
    """What :func:`bench` wrote under ``out``: the suite's run directories (``runs/<run_id>``), its transfer
    directories, and the report (None with ``train_only`` or a ``part``, which write no report)."""

    out: Path
    runs: list[Path]
    transfers: list[Path]
    report_md: Path | None = None
    report_html: Path | None = None


def _quiet(line: str) -> None:
    """The default ``log``: says nothing."""


@contextlib.contextmanager
def _naming(suite_file: str):
    """A ``ValueError`` inside becomes one line naming the suite file, unless the problem already names it."""
    try:
        yield
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(str(suite_file)) else f"{suite_file}: {message}") from None


def bench(suite: PathLike, *, out: PathLike, overwrite: bool = False, rerun_changed: bool = False,
          lm: PathLike | None = None, workers: int | None = None, engine: str = "local", address: str | None = None,
          part: str | tuple[int, int] | None = None, shard_size: int = 25, train_only: bool = False,
          slowdown_score: Sequence[str] | None = None, device: str | None = None,
          gpus_per_task: float | None = None, data_dir: PathLike | None = None, nltk_data: PathLike | None = None,
          lexicons: PathLike | None = None, cache_dir: PathLike | None = None, mlm: PathLike | None = None,
          resources: PathLike | None = None, progress: bool = False, command: str | None = None,
          log: Callable[[str], Any] | None = None) -> BenchResult:
    """Run the suite file ``suite`` into ``out`` (see the module docstring). ``engine``: ``"local"`` (``workers``
    processes, default: the CPUs available; with a GPU device one per visible GPU, at most ``workers``) or
    ``"ray"`` (``address``: a running cluster; each worker requests ``gpus_per_task`` GPUs, default 1 on
    ``cuda``, else 0); ``part``: ``"i/k"`` or ``(i, k)``; ``rerun_changed``: re-run runs whose model weights
    changed (the old run is moved aside); ``train_only``: train the missing models, then stop; ``lm``: the
    quality stage's causal LM when the suite asks for the stage; ``slowdown_score``: the slowdown runs' search
    scores, replacing the suite's; ``device``: default the suite's, else auto. Paths not given come from the
    suite, then the bundle (``resources``)."""
    from robustness.devices import check_device
    from robustness.jobs import check_counts
    from robustness.suite.executors import RayPool, default_workers
    from robustness.suite.gpus import gpu_slots, visible_gpus
    from robustness.suite.gpus import gpus_per_task as ray_gpus
    from robustness.suite.plan import max_tasks, parse_part
    from robustness.suite.suite_file import load_suite
    from robustness.suite.timings import new_invocation, timed

    log = log or _quiet
    check_counts(workers=workers, shard_size=shard_size)
    if address and engine != "ray":
        raise ValueError("--address names a Ray cluster; add --engine ray, or drop --address to run locally")
    flag_device = check_device(device) if device is not None else None
    if gpus_per_task is not None and engine != "ray":
        raise ValueError("--gpus-per-task is for --engine ray (the local pool runs one worker per visible GPU)")
    spec = load_suite(suite)
    if part is not None:
        part = parse_part(part if isinstance(part, str) else f"{part[0]}/{part[1]}")
    device = flag_device or spec.device
    gpus_per_ray_task = ray_gpus(device, gpus_per_task) if engine == "ray" else 0.0
    paths, offline = located(resources, spec, data_dir=data_dir, nltk_data=nltk_data, lexicons=lexicons, mlm=mlm,
                             lm=lm)
    spec = dataclasses.replace(spec, data_dir=paths["data_dir"], device=device)
    if slowdown_score:
        if "slowdown" not in spec.goals:
            raise ValueError(f"--slowdown-score needs a suite with slowdown runs; add goals = [\"slowdown\"] to "
                             f"{os.fspath(suite)}")
        spec = dataclasses.replace(spec, slowdown_score=tuple(slowdown_score))
    out = Path(out)
    # local GPU workers: one per visible GPU, capped by workers; None on the CPU (then nothing changes)
    gpus = gpu_slots(device, workers, visible_gpus()) if engine == "local" and device != "cpu" else None
    workers = len(gpus) if gpus else (default_workers() if workers is None else workers)
    # With Ray, Ray starts first: its actors (fresh processes) import torch, transformers and TextAttack while
    # this process imports what it needs, validates the suite, trains and plans. The pool closes when the
    # attacks end.
    stack = attack_resources(paths, cache_dir, offline, import_attack=False)
    options = {"suite_file": os.fspath(suite), "overwrite": overwrite, "rerun_changed": rerun_changed,
               "engine": engine, "address": address, "shard_size": shard_size, "train_only": train_only,
               "mlm": paths["mlm"], "progress": progress, "command": command, "log": log, "gpus": gpus,
               # `with options["stage"]("train"):` appends the stage's wall and CPU time to <out>/timings.jsonl
               "stage": functools.partial(timed, out, spec.name, log=log, invocation=new_invocation(), engine=engine,
                                          part=f"{part[0]}/{part[1]}" if part else None, command=command)}
    with contextlib.ExitStack() as exits:
        pool = None
        if engine == "ray" and not train_only:
            bound = max_tasks(len(spec.models), len(spec.recipes), spec.n, shard_size, part)
            gpu_request = {"gpus_per_task": gpus_per_ray_task} if gpus_per_ray_task else {}  # CPU: as before
            pool = exits.enter_context(RayPool(stack, workers, address, max_actors=bound, **gpu_request))
        attacked = _attacks(spec, part, out, workers, stack, pool, options)
    if attacked is None:  # train_only
        return BenchResult(out=out, runs=[], transfers=[])
    spec, runs, model_dirs, fingerprints = attacked  # the suite with the select rule's choices made concrete
    run_dirs = [out / "runs" / s.run_id for s in runs]
    if part is not None:
        log(f"[bench] part {part[0]}/{part[1]} done; once every part is, `robustness bench {os.fspath(suite)} "
            f"--out {out}` writes the report")
        return BenchResult(out=out, runs=run_dirs, transfers=[])
    return _after_attacks(spec, out, stack, model_dirs, fingerprints, run_dirs, paths["lm"], options)


def _attacks(spec: Any, part: tuple[int, int] | None, out: Path, workers: int, stack: Any, pool: Any,
             options: dict[str, Any]) -> tuple[Any, list, dict[str, str], dict[str, str]] | None:
    """Up to the attacks: validate, train (unless a part), calibrate, pre-register, plan, execute. ``(suite,
    runs, model_dirs, fingerprints)`` (the suite with its ``selected`` settings made concrete; each model's
    fingerprint, hashed once for the whole bench), or None with ``train_only``."""
    from robustness.attack.rundir import reconcile_changed
    from robustness.models.fingerprint import model_fingerprint
    from robustness.resources.textattack_compat import import_textattack
    from robustness.signals import signal_name
    from robustness.suite import stages
    from robustness.suite.executors import Driver, execute
    from robustness.suite.plan import plan_tasks, select_part
    from robustness.suite.shards import mark_interrupted, prepare_run
    from robustness.suite.validate import check_plan, validate_suite

    log, command, suite_file, stage = options["log"], options["command"], options["suite_file"], options["stage"]
    with _naming(suite_file):
        validate_suite(spec, out, overwrite=options["overwrite"], mlm=options["mlm"])
    if pool is not None:  # Ray is up (it started while this process validated) before anything is trained or written
        pool.wait()
    if options["engine"] != "ray":  # local workers are forked from this process; a Ray driver attacks nothing
        import_textattack(stack.nltk_data, offline=stack.offline)
    with stage("train"):  # recorded on every invocation, also when every model is already trained
        model_dirs = stages.locate_models(spec, out, train=part is None, log=log, progress=options["progress"],
                                          resources=stack)
    if options["train_only"]:
        return None
    with stage("calibrate"):
        stages.calibrate_thresholds(spec, model_dirs, log=log)
        fingerprints = {model_id: model_fingerprint(path) for model_id, path in model_dirs.items()}
    with stage("preregister"):
        selection = stages.preregister(spec, model_dirs, fingerprints, out, log=log)  # selection.json, before attacks
    if any(m.awaits_choice for m in spec.models):  # the "selected" settings, now that the rule has chosen
        spec = spec.with_choices(selection["choices"])
        with stage("calibrate"):
            stages.calibrate_thresholds(spec, model_dirs, log=log)  # thresholds matched to the chosen settings
    with _naming(suite_file):  # calibrated settings too, before any attack
        check_plan(spec, model_dirs)
    # Recipe-major order: an interrupted suite leaves whole recipes compared across every setting.
    runs = sorted(spec.run_specs(model_dirs), key=lambda s: spec.recipes.index(s.recipe))
    for moved in reconcile_changed(out / "runs", {s.run_id: fingerprints[s.model_id] for s in runs},
                                   options["rerun_changed"]):
        log(f"[bench] model changed: old run moved to {moved}")
    done = {s.run_id: prepare_run(s, out / "runs" / s.run_id, command, fingerprints[s.model_id]) for s in runs}
    log(f"[bench] {sum(len(done[s.run_id]) >= s.n for s in runs)} of {len(runs)} runs already complete")
    tasks = select_part(plan_tasks(runs, done, shard_size=options["shard_size"]), part)
    driver = Driver(runs, out / "runs", done, command)
    driver.complete_finished()
    todo = [t for t in tasks if t.size]
    log(f"[bench] {len(todo)} tasks ({sum(t.size for t in todo)} examples) on {options['engine']}"
        + (f", part {part[0]}/{part[1]}" if part else ""))
    try:
        with stage("attacks"):
            execute(todo, driver, stack, workers=workers, engine=options["engine"], address=options["address"],
                    progress=options["progress"], pool=pool, gpus=options["gpus"])
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: unfinished runs say so, with their true record count
        for run in runs:
            mark_interrupted(out / "runs" / run.run_id, signal_name(exc))
        raise
    return spec, runs, model_dirs, fingerprints


def _after_attacks(spec: Any, out: Path, stack: Any, model_dirs: dict[str, str], fingerprints: dict[str, str],
                   run_dirs: list[Path], lm: str | None, options: dict[str, Any]) -> BenchResult:
    """Transfers, clean tables, quality and re-validation (when the suite asks for them) and the report, once the
    attacks are done."""
    from robustness.report import write_report
    from robustness.resources.textattack_compat import import_textattack
    from robustness.suite import stages

    log, command, stage = options["log"], options["command"], options["stage"]
    import_textattack(stack.nltk_data, offline=stack.offline)  # the transfers attack in this process
    with stage("transfers"):
        stages.run_transfers(spec, model_dirs, out, command, log=log)
    with stage("triggers"):
        stages.run_triggers(spec, model_dirs, out, command, log=log)
    with stage("clean"):  # seconds: before the slow quality stage, so it survives a stop
        clean = stages.clean_tables(spec, model_dirs, fingerprints, out, log=log)
    if spec.quality:  # once every run is complete: the report reads each run's quality.jsonl
        with stage("quality"):
            score_quality(run_dirs, lm, None, device=spec.device, log=log, prefix="[bench] ")
    if spec.revalidate:  # strict re-validation, once every run is complete: the report reads revalidation.jsonl
        with stage("revalidate"):
            revalidate_runs(run_dirs, spec.revalidate, lm=lm, lexicons=stack.lexicons_dir,
                            nltk_data=stack.nltk_data, cache_dir=stack.cache_dir,
                            sentence_encoder=spec.sentence_encoder, progress=options["progress"], log=log,
                            prefix="[bench] ")
    transfers = [out / "transfers" / t.run_id for t in spec.transfer_specs(model_dirs, out / "runs")]
    sources = [out / "runs", *([out / "transfers"] if (out / "transfers").is_dir() else [])]
    recorded = stages.record_verdict_options(spec, out, log=log)  # what the report is judged by: verdict.json
    provenance = {"suite": options["suite_file"], "command": command,
                  "verdict options": f"the suite's [verdict], recorded in {recorded}"}
    with stage("report"):
        md, html = write_report(sources, out, provenance=provenance, verdict_options=spec.verdict, clean=clean,
                                overwrite=options["overwrite"])
    log(f"[bench] report: {md} and {html}")
    return BenchResult(out=out, runs=run_dirs, transfers=transfers, report_md=md, report_html=html)
