"""``robustness bench``: a suite end to end (validate, train, calibrate, plan, attack on the chosen engine,
transfers, clean tables, quality, report), resumable, or one ``--part i/k`` of its attacks."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path

from robustness.commands.common import attack_resources, import_attack_stack, located, revalidate_runs, score_quality

__all__ = ["cmd_bench"]


@contextlib.contextmanager
def _naming(suite_file: str):
    """A ``ValueError`` inside becomes one line naming the suite file, unless the problem already names it."""
    try:
        yield
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(str(suite_file)) else f"{suite_file}: {message}") from None


def _bench_attacks(args: argparse.Namespace, suite, part: tuple[int, int] | None, out: Path, workers: int,
                   resources, pool, command: str, gpus: list[str] | None = None):
    """``bench`` up to the attacks: validate, train (unless a part), calibrate, plan, execute. ``(runs,
    model_dirs, fingerprints)`` (each model's, hashed once for the whole command), or None with ``--train-only``."""
    from robustness.attack.rundir import reconcile_changed
    from robustness.models.fingerprint import model_fingerprint
    from robustness.signals import signal_name
    from robustness.suite import stages
    from robustness.suite.executors import Driver, execute
    from robustness.suite.plan import plan_tasks, select_part
    from robustness.suite.shards import mark_interrupted, prepare_run
    from robustness.suite.validate import check_plan, validate_suite

    with _naming(args.suite):
        validate_suite(suite, out, overwrite=args.overwrite, mlm=args.mlm)
    if pool is not None:  # Ray is up (it started while this process validated) before anything is trained or written
        pool.wait()
    if args.engine != "ray":  # local workers are forked from this process; a Ray driver attacks nothing
        import_attack_stack(resources)
    model_dirs = stages.locate_models(suite, out, train=part is None, resources=resources)
    if args.train_only:
        return None
    stages.calibrate_thresholds(suite, model_dirs)
    with _naming(args.suite):  # calibrated settings too, before any attack
        check_plan(suite, model_dirs)
    fingerprints = {model_id: model_fingerprint(path) for model_id, path in model_dirs.items()}
    stages.preregister(suite, model_dirs, fingerprints, out)  # selection.json, before any attack
    # Recipe-major order: an interrupted suite leaves whole recipes compared across every setting.
    runs = sorted(suite.run_specs(model_dirs), key=lambda s: suite.recipes.index(s.recipe))
    for moved in reconcile_changed(out / "runs", {s.run_id: fingerprints[s.model_id] for s in runs},
                                   args.rerun_changed):
        print(f"[bench] model changed: old run moved to {moved}")
    done = {s.run_id: prepare_run(s, out / "runs" / s.run_id, command, fingerprints[s.model_id]) for s in runs}
    complete = sum(len(done[s.run_id]) >= s.n for s in runs)
    print(f"[bench] {complete} of {len(runs)} runs already complete")
    tasks = select_part(plan_tasks(runs, done, shard_size=args.shard_size), part)
    driver = Driver(runs, out / "runs", done, command)
    driver.complete_finished()
    todo = [t for t in tasks if t.size]
    print(f"[bench] {len(todo)} tasks ({sum(t.size for t in todo)} examples) on {args.engine}"
          + (f", part {part[0]}/{part[1]}" if part else ""))
    try:
        execute(todo, driver, resources, workers=workers, engine=args.engine, address=args.address, pool=pool,
                gpus=gpus)
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: unfinished runs say so, with their true record count
        for spec in runs:
            mark_interrupted(out / "runs" / spec.run_id, signal_name(exc))
        raise
    return runs, model_dirs, fingerprints


def cmd_bench(args: argparse.Namespace, command: str) -> int:
    from robustness.devices import check_device
    from robustness.suite import stages
    from robustness.suite.executors import RayPool, default_workers
    from robustness.suite.gpus import gpu_slots, gpus_per_task, visible_gpus
    from robustness.suite.plan import max_tasks, parse_part
    from robustness.suite.suite_file import load_suite

    flag_device = check_device(args.device) if args.device is not None else None
    if args.gpus_per_task is not None and args.engine != "ray":
        raise ValueError("--gpus-per-task is for --engine ray (the local pool runs one worker per visible GPU)")
    suite = load_suite(args.suite)
    part = parse_part(args.part) if args.part else None
    device = flag_device or suite.device
    gpus_per_ray_task = gpus_per_task(device, args.gpus_per_task) if args.engine == "ray" else 0.0
    args = located(args, suite)
    suite = dataclasses.replace(suite, data_dir=args.data_dir, device=device)
    if args.slowdown_score:
        if "slowdown" not in suite.goals:
            raise ValueError(f"--slowdown-score needs a suite with slowdown runs; add goals = [\"slowdown\"] to "
                             f"{args.suite}")
        suite = dataclasses.replace(suite, slowdown_score=tuple(args.slowdown_score))
    out = Path(args.out)
    # local GPU workers: one per visible GPU, capped by --workers; None on the CPU (then nothing changes)
    gpus = gpu_slots(device, args.workers, visible_gpus()) if args.engine == "local" and device != "cpu" else None
    workers = len(gpus) if gpus else (default_workers() if args.workers is None else args.workers)
    # With Ray, Ray starts first: its actors (fresh processes) import torch, transformers and TextAttack while
    # this process imports what it needs, validates the suite, trains and plans. The pool closes when the
    # attacks end.
    resources = attack_resources(args, import_attack=False)
    with contextlib.ExitStack() as stack:
        pool = None
        if args.engine == "ray" and not args.train_only:
            bound = max_tasks(len(suite.models), len(suite.recipes), suite.n, args.shard_size, part)
            gpu_request = {"gpus_per_task": gpus_per_ray_task} if gpus_per_ray_task else {}  # CPU: as before
            pool = stack.enter_context(RayPool(resources, workers, args.address, max_actors=bound, **gpu_request))
        attacked = _bench_attacks(args, suite, part, out, workers, resources, pool, command, gpus)
    if attacked is None:  # --train-only
        return 0
    runs, model_dirs, fingerprints = attacked
    if part is not None:
        print(f"[bench] part {part[0]}/{part[1]} done; once every part is, `robustness bench {args.suite} "
              f"--out {out}` writes the report")
        return 0
    from robustness.report import write_report

    import_attack_stack(resources)  # the transfers attack in this process
    stages.run_transfers(suite, model_dirs, out, command)
    stages.run_triggers(suite, model_dirs, out, command)
    # seconds: before the slow quality stage, so it survives a stop
    clean = stages.clean_tables(suite, model_dirs, fingerprints, out)
    if suite.quality:  # the quality stage, once every run is complete: the report reads its quality.jsonl
        score_quality([out / "runs" / s.run_id for s in runs], args.lm, None, prefix="[bench] ", device=device)
    if suite.revalidate:  # strict re-validation, once every run is complete: the report reads revalidation.jsonl
        revalidate_runs([out / "runs" / s.run_id for s in runs], suite.revalidate, argparse.Namespace(
            lm=args.lm, lexicons=resources.lexicons_dir, nltk_data=resources.nltk_data, cache_dir=resources.cache_dir,
            sentence_encoder=suite.sentence_encoder, batch_size=16), prefix="[bench] ")
    sources = [out / "runs", *([out / "transfers"] if (out / "transfers").is_dir() else [])]
    md, html = write_report(sources, out, provenance={"suite": str(args.suite), "command": command},
                            verdict_options=suite.verdict, clean=clean, overwrite=args.overwrite)
    print(f"[bench] report: {md} and {html}")
    return 0
