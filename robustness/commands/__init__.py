"""Implementations of the ``robustness`` subcommands (the CLI parses, these do the work and print):
``cmd_<name>`` for each; ``bench`` in :mod:`.bench`, helpers several share in :mod:`.common`."""

from __future__ import annotations

import argparse
from pathlib import Path

from robustness.commands.bench import cmd_bench
from robustness.commands.common import (
    attack_resources,
    check_out_file,
    located,
    revalidate_runs,
    score_quality,
    setting_arg,
)
from robustness.commands.convert import cmd_import
from robustness.commands.pack import cmd_pack
from robustness.commands.trigger import cmd_trigger
from robustness.suite.specs import parse_setting

__all__ = ["cmd_aggregate", "cmd_attack", "cmd_bench", "cmd_compare", "cmd_doctor", "cmd_evaluate", "cmd_ls",
           "cmd_quality", "cmd_refresh", "cmd_report", "cmd_revalidate", "cmd_train", "cmd_transfer", "cmd_trigger"]
__all__ += ["cmd_import"]  # robustness import, in commands/convert.py
__all__ += ["cmd_pack"]  # robustness pack, in commands/pack.py


_TRAIN_OPTIONS = ("dataset", "head", "pooling", "backbone", "epochs", "lr", "batch_size", "max_length", "warmup",
                  "seed", "limit", "eval_limit", "train_split", "eval_split")


def cmd_train(args: argparse.Namespace, command: str) -> int:
    from robustness.models.train import TrainConfig, train_model

    given = {name: getattr(args, name) for name in _TRAIN_OPTIONS if getattr(args, name) is not None}
    if args.adversarial is not None or args.init is not None:
        return _train_adversarial(args, given)
    args = located(args)
    config = TrainConfig(out=args.out, data_dir=args.data_dir, device=args.device, amp=args.amp, **given)
    out = train_model(config, overwrite=args.overwrite, checkpoint_every=args.checkpoint_every)
    print(f"saved {config.head} model to {out}")
    return 0


def _train_adversarial(args: argparse.Namespace, given: dict) -> int:
    """``train --adversarial RECIPE --init MODEL_DIR``: every option is checked before any model loads."""
    from robustness.attack.adversarial_options import AdversarialOptions, adversarial_config, check_adversarial

    if args.adversarial is None:
        raise ValueError("--init starts an adversarial fine-tuning: add --adversarial RECIPE (e.g. a2t)")
    if args.init is None:
        raise ValueError("--adversarial fine-tunes a trained model: pass --init MODEL_DIR (a clean model)")
    options = AdversarialOptions(recipe=args.adversarial, init=args.init, goal=args.adversarial_goal,
                                 ratio=args.adv_ratio, setting=args.adv_setting, query_budget=args.adv_query_budget)
    args = located(args)
    check_adversarial(options, mlm=args.mlm)
    config = adversarial_config(args.init, given, out=args.out, data_dir=args.data_dir, device=args.device,
                                amp=args.amp)
    resources = attack_resources(args)
    from robustness.attack.adversarial_training import train_adversarial

    out = train_adversarial(config, options, resources=resources, overwrite=args.overwrite,
                            checkpoint_every=args.checkpoint_every)
    print(f"saved adversarially fine-tuned ({args.adversarial}, {args.adversarial_goal}) {config.head} model to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace, command: str) -> int:
    from robustness.data import load_examples
    from robustness.devices import check_device, default_batch_size, use_device
    from robustness.jobs import StageBars
    from robustness.models.evaluate import evaluate_model, timed_repetitions
    from robustness.models.pabee import check_model_dir, load_model_and_tokenizer
    from robustness.models.saved import saved_facts
    from robustness.provenance import write_csv_atomic
    from robustness.requests import check_calibration_target

    check_device(args.device)
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    args = located(args)
    out = Path(args.out)
    check_out_file(out, args.overwrite)
    check_model_dir(args.model)
    facts = saved_facts(args.model)  # a match the model cannot reach is refused before any work
    for flag, values in (("--match-patience", args.match_patience), ("--match-speedup", args.match_speedup)):
        for value in values or []:
            check_calibration_target(str(value), num_layers=facts.num_layers, head=facts.head,
                                     where=f"{flag} {value} ({args.model})", setting=flag == "--match-patience")
    device = use_device(args.device)
    batch_size = args.batch_size or default_batch_size(device)
    examples = load_examples(args.dataset, args.split, data_dir=args.data_dir, limit=args.limit, seed=args.seed)
    model, tokenizer = load_model_and_tokenizer(args.model)
    model = model.to(device)
    bars = StageBars()
    match = [*(parse_setting(x).label for x in args.match_patience or []), *(str(x) for x in args.match_speedup or [])]
    table = evaluate_model(model, tokenizer, examples.texts, examples.labels, batch_size=batch_size,
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


def cmd_attack(args: argparse.Namespace, command: str) -> int:
    from robustness.suite.specs import RunSpec, check_goal

    if args.goal != "slowdown" and args.slowdown_score != "exit":  # before any model or resource is loaded
        raise ValueError(f"--slowdown-score {args.slowdown_score} needs --goal slowdown")
    check_goal(args.goal, args.goal_target, args.keep_prediction, args.slowdown_score)
    from robustness.devices import check_device

    check_device(args.device)
    setting = setting_arg(args)
    args = located(args)
    resources = attack_resources(args)
    from robustness.attack.runner import run_attack

    spec = RunSpec(
        model_id=Path(args.model).name, model_dir=str(args.model), recipe=args.recipe, dataset=args.dataset,
        setting=setting.label, split=args.split, n=args.n, seed=args.seed,
        query_budget=args.query_budget, batch_size=args.batch_size, max_length=args.max_length, stock=args.stock,
        data_dir=args.data_dir, goal=args.goal, goal_target=args.goal_target, keep_prediction=args.keep_prediction,
        slowdown_score=args.slowdown_score,
        device=args.device,
        sentence_encoder=args.sentence_encoder,
    )
    from robustness.devices import use_device

    use_device(spec.device)  # the recipe's sentence encoder loads there too
    run_dir = run_attack(spec, Path(args.out), resources=resources, command=command, overwrite=args.overwrite)
    print(f"run complete: {run_dir}")
    return 0


def cmd_transfer(args: argparse.Namespace, command: str) -> int:
    setting_arg(argparse.Namespace(setting=args.setting, patience=None))  # a bad --setting, named before any load
    from robustness.devices import check_device

    check_device(args.device)
    args = located(args)
    attack_resources(args)
    from robustness.attack.transfer import TransferSpec, run_transfer
    from robustness.provenance import read_json_object

    source = Path(args.run)
    if not (source / "spec.json").is_file():
        raise ValueError(f"{source} is not a run directory (spec.json missing)")
    spec = TransferSpec(source_run=str(source), source_run_id=str(read_json_object(source / "spec.json").get(
        "run_id", source.name)), model_id=Path(args.model).name, model_dir=str(args.model), setting=args.setting,
        batch_size=args.batch_size, max_length=args.max_length, device=args.device)
    print(f"transfer complete: {run_transfer(spec, Path(args.out), command=command)}")
    return 0


def cmd_quality(args: argparse.Namespace, command: str) -> int:
    from robustness.analysis.runs import find_runs
    from robustness.devices import check_device

    check_device(args.device)
    args = located(args)
    runs = find_runs([Path(r) for r in args.runs])
    if not runs:
        raise ValueError(f"no runs under {' '.join(args.runs)}")
    score_quality(runs, args.lm, args.batch_size, device=args.device)
    return 0


def cmd_revalidate(args: argparse.Namespace, command: str) -> int:
    from robustness.analysis.runs import find_runs
    from robustness.revalidate import check_preset

    check_preset(args.preset)  # before anything loads
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    args = located(args)
    runs = find_runs([Path(r) for r in args.runs])
    if not runs:
        raise ValueError(f"no runs under {' '.join(args.runs)}")
    revalidate_runs(runs, args.preset, args)
    return 0


def cmd_aggregate(args: argparse.Namespace, command: str) -> int:
    from robustness.analysis.aggregate import exit_table, flip_table, summarize
    from robustness.analysis.runs import load_runs
    from robustness.analysis.tables import write_tables

    found = load_runs([Path(r) for r in args.runs], include_incomplete=True)
    runs = [r for r in found if r.complete]
    if not runs:
        raise ValueError(f"no complete runs under {' '.join(args.runs)}")
    for run in (r for r in found if not r.complete):
        print(f"left out {run.run_id}: status {run.info.get('status') or 'unknown'}, {len(run.records)} records")
    from robustness.analysis.quality import quality_table
    from robustness.analysis.revalidation import revalidation_table

    extra = {"exits": exit_table(runs), "flips": flip_table(runs)}
    quality = quality_table(runs)
    if not quality.empty:
        extra["quality"] = quality
    summary = summarize(runs)
    strict = revalidation_table(summary)
    if not strict.empty:  # runs re-validated (robustness revalidate)
        extra["revalidation"] = strict
    paths = write_tables(summary, Path(args.out), extra=extra, overwrite=args.overwrite)
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace, command: str) -> int:
    from robustness.report import write_report
    from robustness.suite.specs import VerdictOptions

    options = VerdictOptions(margin=args.margin, min_n=args.min_n, alpha=args.alpha, setting=args.setting,
                             equivalence_margin=args.equivalence_margin)
    clean = None
    if args.clean_eval:
        from robustness.analysis.verdict import read_clean_tables

        clean = read_clean_tables([Path(p) for p in args.clean_eval])
    md, html = write_report([Path(r) for r in args.runs], Path(args.out), provenance={"command": command},
                            verdict_options=options, clean=clean, overwrite=args.overwrite)
    print(f"wrote {md}\nwrote {html}")
    return 0


def cmd_refresh(args: argparse.Namespace, command: str) -> int:
    from robustness.report_tables import refresh_from_tables

    if args.num_classes is not None and args.num_classes < 2:
        raise ValueError(f"--num-classes must be >= 2, got {args.num_classes}")
    result = refresh_from_tables(Path(args.report), num_classes=args.num_classes)
    print("\n".join(f"wrote {Path(args.report) / name}" for name in result["written"]))
    for what in result["not_found"]:
        print(f"left as it was: {what}")
    return 0


def _compared_run(selector: str, pool: str | None):
    """A run directory, or with ``--from``, a ``MODEL@SETTING[@RECIPE]`` selector among that output's runs."""
    from robustness.analysis.compare import select_run
    from robustness.analysis.runs import load_run, load_runs

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
        check_out_file(Path(args.out), args.overwrite)
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
        from robustness.analysis.runs import find_runs, load_run

        if not args.path:
            raise ValueError("ls runs needs a directory")
        for run in find_runs([Path(args.path)]):
            print(f"{'complete' if load_run(run).complete else 'partial ':9s} {run}")
    return 0


def cmd_doctor(args: argparse.Namespace, command: str) -> int:
    from robustness.attack.recipes.availability import recipe_availability
    from robustness.resources.bundle import find_bundle
    from robustness.resources.doctor import doctor

    bundle = find_bundle(args.resources)
    if bundle is not None:
        missing = bundle.missing()
        lacks = f" lacks {', '.join(missing)}" if missing else ""
        print(f"[{'--' if missing else 'ok'}] bundle: {bundle.root}{lacks}")
    args = located(args)
    lm = bundle.part("lm") if bundle is not None else None
    for status in doctor(nltk_data=args.nltk_data, lexicons_dir=args.lexicons, mlm=args.mlm, lm=lm):
        print(f"[{'ok' if status.available else '--'}] {status.name}: {status.detail}")
    print()
    for recipe in recipe_availability(nltk_data=args.nltk_data, lexicons_dir=args.lexicons, mlm=args.mlm):
        print(f"[{'ok' if recipe.runnable else '--'}] {recipe.name}: {recipe.reason}")
    return 0
