"""Implementations of the ``robustness`` subcommands (the CLI parses, these do the work and print)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from pathlib import Path

from robustness.suite.specs import parse_setting


def _check_out_file(path: Path, overwrite: bool) -> None:
    """``path`` may be written: not a directory, its folder can be created, and it does not exist unless
    ``overwrite`` (before any work)."""
    from robustness.outputs import check_output_dir

    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name")
    check_output_dir(path.parent)
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; pass --overwrite to replace it")


def _located(args: argparse.Namespace, suite=None) -> argparse.Namespace:
    """``args`` with every resource path this command takes filled in: its flag, else the suite's field, else
    the bundle's part (bundle: ``--resources`` > suite ``resources`` > ``$ROBUSTNESS_RESOURCES``); ``offline``
    is True when a bundle is in use. Paths still None fall back to the individual env vars downstream."""
    from robustness.resources.bundle import PARTS, find_bundle

    bundle = find_bundle(getattr(args, "resources", None), getattr(suite, "resources", None))
    values = vars(args).copy()
    for name in PARTS:
        if name in values and values[name] is None:
            values[name] = getattr(suite, name, None) or (bundle.part(name) if bundle else None)
    values["offline"] = True if bundle is not None else None
    if bundle is not None:  # before transformers / huggingface_hub are imported: they read it at import time
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return argparse.Namespace(**values)


def cmd_train(args: argparse.Namespace, command: str) -> int:
    from robustness.models.train import TrainConfig, train_model

    args = _located(args)
    config = TrainConfig(
        out=args.out, dataset=args.dataset, head=args.head, pooling=args.pooling, backbone=args.backbone,
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_length=args.max_length, warmup=args.warmup,
        seed=args.seed, limit=args.limit, eval_limit=args.eval_limit, train_split=args.train_split,
        eval_split=args.eval_split, data_dir=args.data_dir,
    )
    out = train_model(config, overwrite=args.overwrite)
    print(f"saved {args.head} model to {out}")
    return 0


class _StageBars:
    """One progress bar per stage: opened at the stage's first update, closed when it reaches its total (or
    when the next stage starts)."""

    def __init__(self, tqdm) -> None:
        self._tqdm, self._bar, self._desc = tqdm, None, None

    def counter(self, desc: str, total: int, unit: str):
        def update(n: int) -> None:
            if self._desc != desc:
                self.close()
                self._bar, self._desc = self._tqdm(total=total, desc=desc, unit=unit), desc
            self._bar.update(n)
            if self._bar.n >= total:
                self.close()

        return update

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar, self._desc = None, None


def cmd_evaluate(args: argparse.Namespace, command: str) -> int:
    from tqdm.auto import tqdm

    from robustness.data import load_examples
    from robustness.models.evaluate import evaluate_model, timed_repetitions
    from robustness.models.pabee import check_model_dir, load_model_and_tokenizer
    from robustness.provenance import write_csv_atomic

    args = _located(args)
    out = Path(args.out)
    _check_out_file(out, args.overwrite)
    check_model_dir(args.model)
    examples = load_examples(args.dataset, args.split, data_dir=args.data_dir, limit=args.limit, seed=args.seed)
    model, tokenizer = load_model_and_tokenizer(args.model)
    bars = _StageBars(tqdm)
    match = [*(parse_setting(x).label for x in args.match_patience or []), *(str(x) for x in args.match_speedup or [])]
    table = evaluate_model(model, tokenizer, examples.texts, examples.labels, batch_size=args.batch_size,
                           max_length=args.max_length, timing_repeats=args.timing_repeats,
                           progress=bars.counter("all-layer pass", len(examples), "ex"),
                           timing_progress=bars.counter("timing early exit vs full depth",
                                                        timed_repetitions(model, args.timing_repeats, len(match)),
                                                        "rep"), match=match)
    bars.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(out, table)
    print(table.to_string(index=False))
    print(f"wrote {out}")
    if match:
        from robustness.models.calibrate import write_calibration

        where = {"dataset": args.dataset, "split": args.split, "n": len(examples), "seed": args.seed}
        entries = [{"reference": ref, **row, **where} for _, row in table.iterrows()
                   for ref in str(row["calibration"]).split() if ref]
        print(f"wrote {write_calibration(args.model, entries)}")
    return 0


def _resources(args: argparse.Namespace, import_attack: bool = True):
    """Resources from located flags (:func:`_located`; else env vars), with TextAttack imported offline-safely
    *before* any module that imports it at load time (the wrapper, the runner); ``import_attack=False`` leaves
    that import to :func:`_import_attack`, later."""
    from robustness.attack.recipes import Resources

    resources = Resources.from_args(nltk_data=args.nltk_data, lexicons_dir=args.lexicons,
                                    cache_dir=args.cache_dir, mlm=args.mlm, offline=args.offline)
    if import_attack:
        _import_attack(resources)
    return resources


def _import_attack(resources) -> None:
    from robustness.resources.textattack_compat import import_textattack

    import_textattack(resources.nltk_data, offline=resources.offline)


def _setting_arg(args: argparse.Namespace):
    """``--setting S`` or its shorthand ``--patience P`` (not both); full depth when neither is given."""
    if args.setting is not None and args.patience is not None:
        raise ValueError("give --setting or --patience, not both")
    if args.patience is not None:
        setting = parse_setting(args.patience)
        if setting.policy not in ("patience", "full"):
            raise ValueError(f"--patience takes an integer >= 1 or 'full', got {args.patience!r}; use --setting")
        return setting
    return parse_setting("full" if args.setting is None else args.setting)


def cmd_attack(args: argparse.Namespace, command: str) -> int:
    from robustness.suite.specs import RunSpec

    setting = _setting_arg(args)
    args = _located(args)
    resources = _resources(args)
    from robustness.attack.runner import run_attack

    spec = RunSpec(
        model_id=Path(args.model).name, model_dir=str(args.model), recipe=args.recipe, dataset=args.dataset,
        setting=setting.label, split=args.split, n=args.n, seed=args.seed,
        query_budget=args.query_budget, batch_size=args.batch_size, max_length=args.max_length, stock=args.stock,
        data_dir=args.data_dir, goal=args.goal, goal_target=args.goal_target, keep_prediction=args.keep_prediction,
    )
    run_dir = run_attack(spec, Path(args.out), resources=resources, command=command, overwrite=args.overwrite)
    print(f"run complete: {run_dir}")
    return 0


def cmd_transfer(args: argparse.Namespace, command: str) -> int:
    args = _located(args)
    _resources(args)
    from robustness.attack.transfer import TransferSpec, run_transfer
    from robustness.provenance import read_json_object

    source = Path(args.run)
    if not (source / "spec.json").is_file():
        raise ValueError(f"{source} is not a run directory (spec.json missing)")
    spec = TransferSpec(source_run=str(source), source_run_id=str(read_json_object(source / "spec.json").get(
        "run_id", source.name)), model_id=Path(args.model).name, model_dir=str(args.model), setting=args.setting,
        batch_size=args.batch_size, max_length=args.max_length)
    print(f"transfer complete: {run_transfer(spec, Path(args.out), command=command)}")
    return 0


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
        _import_attack(resources)
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
    args = _located(args, suite)
    suite = dataclasses.replace(suite, data_dir=args.data_dir)
    out = Path(args.out)
    workers = args.workers or default_workers()
    # With Ray, Ray starts first: its actors (fresh processes) import torch, transformers and TextAttack while
    # this process imports what it needs, validates the suite, trains and plans. The pool closes when the
    # attacks end.
    resources = _resources(args, import_attack=False)
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

    _import_attack(resources)  # the transfers attack in this process
    stages.run_transfers(suite, model_dirs, out, command)
    # seconds: before the slow quality stage, so it survives a stop
    clean = stages.clean_tables(suite, model_dirs, fingerprints, out)
    if suite.quality:  # the quality stage, once every run is complete: the report reads its quality.jsonl
        _score_quality([out / "runs" / s.run_id for s in runs], args.lm, 16, prefix="[bench] ")
    sources = [out / "runs", *([out / "transfers"] if (out / "transfers").is_dir() else [])]
    md, html = write_report(sources, out, provenance={"suite": str(args.suite), "command": command},
                            verdict_options=suite.verdict, clean=clean, overwrite=args.overwrite)
    print(f"[bench] report: {md} and {html}")
    return 0


def _score_quality(run_dirs: list[Path], lm: str | None, batch_size: int, prefix: str = "") -> None:
    from robustness.quality import load_lm, score_run

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    model, known = load_lm(lm), {}  # a text's perplexity is computed once for all runs
    for run_dir in run_dirs:
        added = score_run(run_dir, model, batch_size=batch_size, known=known)
        print(f"{prefix}quality: {run_dir.name}: {added} adversarial texts scored")


def cmd_quality(args: argparse.Namespace, command: str) -> int:
    from robustness.analysis.aggregate import find_runs

    args = _located(args)
    runs = find_runs([Path(r) for r in args.runs])
    if not runs:
        raise ValueError(f"no runs under {' '.join(args.runs)}")
    _score_quality(runs, args.lm, args.batch_size)
    return 0


def cmd_aggregate(args: argparse.Namespace, command: str) -> int:
    from robustness.analysis.aggregate import exit_table, flip_table, load_runs, summarize, write_tables

    found = load_runs([Path(r) for r in args.runs], include_incomplete=True)
    runs = [r for r in found if r.complete]
    if not runs:
        raise ValueError(f"no complete runs under {' '.join(args.runs)}")
    for run in (r for r in found if not r.complete):
        print(f"left out {run.run_id}: status {run.info.get('status') or 'unknown'}, {len(run.records)} records")
    from robustness.analysis.quality import quality_table

    extra = {"exits": exit_table(runs), "flips": flip_table(runs)}
    quality = quality_table(runs)
    if not quality.empty:
        extra["quality"] = quality
    paths = write_tables(summarize(runs), Path(args.out), extra=extra, overwrite=args.overwrite)
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace, command: str) -> int:
    from robustness.report import write_report
    from robustness.suite.specs import VerdictOptions

    options = VerdictOptions(margin=args.margin, min_n=args.min_n, alpha=args.alpha, setting=args.setting)
    clean = None
    if args.clean_eval:
        from robustness.analysis.verdict import read_clean_tables

        clean = read_clean_tables([Path(p) for p in args.clean_eval])
    md, html = write_report([Path(r) for r in args.runs], Path(args.out), provenance={"command": command},
                            verdict_options=options, clean=clean, overwrite=args.overwrite)
    print(f"wrote {md}\nwrote {html}")
    return 0


def _compared_run(selector: str, pool: str | None):
    """A run directory, or with ``--from``, a ``MODEL@SETTING[@RECIPE]`` selector among that output's runs."""
    from robustness.analysis.aggregate import load_run, load_runs
    from robustness.analysis.compare import select_run

    if pool is None:
        return load_run(Path(selector))
    model_id, _, rest = selector.partition("@")
    setting, _, recipe = rest.partition("@")
    if not setting:
        raise ValueError(f"selector {selector!r} must look like MODEL@SETTING or MODEL@SETTING@RECIPE")
    return select_run(load_runs([Path(pool)]), model_id, setting, recipe or None)


def cmd_compare(args: argparse.Namespace, command: str) -> int:
    from robustness.analysis.compare import compare, format_comparison
    from robustness.provenance import write_csv_atomic

    if args.out:
        _check_out_file(Path(args.out), args.overwrite)
    table = compare(_compared_run(args.a, args.source), _compared_run(args.b, args.source))
    print(format_comparison(table))
    if args.out:
        write_csv_atomic(args.out, table)
        print(f"wrote {args.out}")
    return 0


def cmd_ls(args: argparse.Namespace, command: str) -> int:
    if args.what == "recipes":
        from robustness.attack.recipes import RECIPES

        for info in RECIPES.values():
            print(f"{info.name:16s} {info.description}")
    elif args.what == "datasets":
        from robustness.data import REGISTRY

        for info in REGISTRY.values():
            print(f"{info.name:16s} splits={','.join(info.splits)} labels={','.join(info.label_names)}")
    else:
        from robustness.analysis.aggregate import find_runs, load_run

        if not args.path:
            raise ValueError("ls runs needs a directory")
        for run in find_runs([Path(args.path)]):
            print(f"{'complete' if load_run(run).complete else 'partial ':9s} {run}")
    return 0


def cmd_doctor(args: argparse.Namespace, command: str) -> int:
    from robustness.resources.bundle import find_bundle
    from robustness.resources.doctor import doctor, recipe_availability

    bundle = find_bundle(args.resources)
    if bundle is not None:
        missing = bundle.missing()
        lacks = f" lacks {', '.join(missing)}" if missing else ""
        print(f"[{'--' if missing else 'ok'}] bundle: {bundle.root}{lacks}")
    args = _located(args)
    lm = bundle.part("lm") if bundle is not None else None
    for status in doctor(nltk_data=args.nltk_data, lexicons_dir=args.lexicons, mlm=args.mlm, lm=lm):
        print(f"[{'ok' if status.available else '--'}] {status.name}: {status.detail}")
    print()
    for recipe in recipe_availability(nltk_data=args.nltk_data, lexicons_dir=args.lexicons, mlm=args.mlm):
        print(f"[{'ok' if recipe.runnable else '--'}] {recipe.name}: {recipe.reason}")
    return 0
