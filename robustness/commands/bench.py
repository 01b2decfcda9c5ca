"""``robustness bench``: a suite end to end (validate, train, calibrate, plan, attack on the chosen engine,
transfers, clean tables, quality, report), resumable, or one ``--part i/k`` of its attacks."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path

from robustness.commands.common import attack_resources, import_attack_stack, located, score_quality

__all__ = ["cmd_bench"]


def _bench_attacks(args: argparse.Namespace, suite, part: tuple[int, int] | None, out: Path, workers: int,
                   resources, pool, command: str):
    """``bench`` up to the attacks: validate, train (unless a part), calibrate, plan, execute. ``(runs,
    model_dirs, fingerprints)`` (each model's, hashed once for the whole command), or None with ``--train-only``."""
    from robustness.attack.rundir import reconcile_changed
    from robustness.models.fingerprint import model_fingerprint
    from robustness.signals import signal_name
    from robustness.suite import stages
    from robustness.suite.executors import Driver, execute
    from robustness.suite.plan import plan_tasks, select_part
    from robustness.suite.shards import mark_interrupted, prepare_run
    from robustness.suite.validate import validate_suite

    try:
        validate_suite(suite, out, overwrite=args.overwrite, mlm=args.mlm)
    except ValueError as exc:  # one line naming the suite file, unless the problem already names it
        message = str(exc)
        raise ValueError(message if message.startswith(str(args.suite)) else f"{args.suite}: {message}") from None
    if pool is not None:  # Ray is up (it started while this process validated) before anything is trained or written
        pool.wait()
    if args.engine != "ray":  # local workers are forked from this process; a Ray driver attacks nothing
        import_attack_stack(resources)
    model_dirs = stages.locate_models(suite, out, train=part is None)
    if args.train_only:
        return None
    stages.calibrate_thresholds(suite, model_dirs)
    fingerprints = {model_id: model_fingerprint(path) for model_id, path in model_dirs.items()}
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
        execute(todo, driver, resources, workers=workers, engine=args.engine, address=args.address, pool=pool)
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: unfinished runs say so, with their true record count
        for spec in runs:
            mark_interrupted(out / "runs" / spec.run_id, signal_name(exc))
        raise
    return runs, model_dirs, fingerprints


def cmd_bench(args: argparse.Namespace, command: str) -> int:
    from robustness.suite import stages
    from robustness.suite.executors import RayPool, default_workers
    from robustness.suite.plan import max_tasks, parse_part
    from robustness.suite.suite_file import load_suite

    suite = load_suite(args.suite)
    part = parse_part(args.part) if args.part else None
    args = located(args, suite)
    suite = dataclasses.replace(suite, data_dir=args.data_dir)
    out = Path(args.out)
    workers = args.workers or default_workers()
    # With Ray, Ray starts first: its actors (fresh processes) import torch, transformers and TextAttack while
    # this process imports what it needs, validates the suite, trains and plans. The pool closes when the
    # attacks end.
    resources = attack_resources(args, import_attack=False)
    with contextlib.ExitStack() as stack:
        pool = None
        if args.engine == "ray" and not args.train_only:
            bound = max_tasks(len(suite.models), len(suite.recipes), suite.n, args.shard_size, part)
            pool = stack.enter_context(RayPool(resources, workers, args.address, max_actors=bound))
        attacked = _bench_attacks(args, suite, part, out, workers, resources, pool, command)
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
        score_quality([out / "runs" / s.run_id for s in runs], args.lm, 16, prefix="[bench] ")
    sources = [out / "runs", *([out / "transfers"] if (out / "transfers").is_dir() else [])]
    md, html = write_report(sources, out, provenance={"suite": str(args.suite), "command": command},
                            verdict_options=suite.verdict, clean=clean, overwrite=args.overwrite)
    print(f"[bench] report: {md} and {html}")
    return 0
