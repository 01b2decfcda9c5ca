"""The ``robustness`` subcommands (the CLI parses, these call and print). A job of the façade
(:mod:`robustness.api`: train, evaluate, attack, transfer, trigger, quality, revalidate, aggregate, report,
bench) is one call of it with the parsed flags as its keywords (each flag's destination is the keyword of the same
name), progress bars on and ``print`` as its log; ``cmd_<name>`` then prints what it returned. The other
subcommands (import, refresh, compare, ls, doctor) have no façade call and do their work here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from robustness.commands.convert import cmd_import
from robustness.commands.pack import cmd_pack
from robustness.jobs import check_out_file, located

__all__ = ["cmd_aggregate", "cmd_attack", "cmd_bench", "cmd_compare", "cmd_doctor", "cmd_evaluate", "cmd_ls",
           "cmd_quality", "cmd_refresh", "cmd_report", "cmd_revalidate", "cmd_train", "cmd_transfer", "cmd_trigger"]
__all__ += ["cmd_import"]  # robustness import, in commands/convert.py
__all__ += ["cmd_pack"]  # robustness pack, in commands/pack.py

#: what the parser adds beside the subcommand's flags: the subcommand's name and --debug
_PARSER_ONLY = ("command", "debug")


def job_options(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed flags of a subcommand as the keywords of its façade call (``--batch-size`` -> ``batch_size``)."""
    return {name: value for name, value in vars(args).items() if name not in _PARSER_ONLY}


def cmd_train(args: argparse.Namespace, command: str) -> int:
    from robustness import api
    from robustness.models.saved import saved_facts

    out = api.train(**job_options(args), progress=True)
    head = saved_facts(out).head
    if args.adversarial is None:
        print(f"saved {head} model to {out}")
    else:
        print(f"saved adversarially fine-tuned ({args.adversarial}, {args.adversarial_goal}) {head} model to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace, command: str) -> int:
    from robustness import api
    from robustness.schema.settings import CALIBRATION_FILE

    table = api.evaluate(**job_options(args), progress=True)
    print(table.to_string(index=False))
    print(f"wrote {args.out}")
    if args.match_patience or args.match_speedup:
        print(f"wrote {Path(args.model) / CALIBRATION_FILE}")
    return 0


def cmd_attack(args: argparse.Namespace, command: str) -> int:
    from robustness import api

    print(f"run complete: {api.attack(**job_options(args), progress=True, command=command).path}")
    return 0


def cmd_transfer(args: argparse.Namespace, command: str) -> int:
    from robustness import api

    print(f"transfer complete: {api.transfer(**job_options(args), command=command).path}")
    return 0


def cmd_trigger(args: argparse.Namespace, command: str) -> int:
    from robustness import api

    table = api.trigger(**job_options(args), progress=True, command=command)
    rows = table.to_dict("records") if not args.replay else table.tail(table.attrs["added"]).to_dict("records")
    for row in rows:
        print(f"{row['model_id']} @ {row['setting']}: prefix {row['prefix']!r}, mean exit "
              f"{row['clean_mean_exit']:.3f} -> {row['trigger_mean_exit']:.3f} (shift {row['exit_shift']:+.3f}), "
              f"efficiency gain left {row['efficiency_gain_left']:.3f}, accuracy at exit "
              f"{row['clean_accuracy']:.3f} -> {row['trigger_accuracy']:.3f}")
    if args.replay:
        print(f"replayed {len(rows)} new setting(s) into {Path(args.replay) / 'evaluation.jsonl'}")
    else:
        print(f"trigger complete: {Path(args.out)}")
    return 0


def cmd_quality(args: argparse.Namespace, command: str) -> int:
    from robustness import api

    api.quality(**job_options(args), log=print)
    return 0


def cmd_revalidate(args: argparse.Namespace, command: str) -> int:
    from robustness import api

    api.revalidate(**job_options(args), progress=True, log=print)
    return 0


def cmd_aggregate(args: argparse.Namespace, command: str) -> int:
    from robustness import api

    api.aggregate(**job_options(args), log=print)
    return 0


def cmd_report(args: argparse.Namespace, command: str) -> int:
    from robustness import api

    md, html = api.report(**job_options(args), command=command)
    print(f"wrote {md}\nwrote {html}")
    return 0


def cmd_bench(args: argparse.Namespace, command: str) -> int:
    from robustness import api

    api.bench(**job_options(args), progress=True, command=command, log=print)
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
    elif args.what == "timings":
        _ls_timings(args.path)
    else:
        from robustness.analysis.runs import find_runs, load_run

        if not args.path:
            raise ValueError("ls runs needs a directory")
        for run in find_runs([Path(args.path)]):
            print(f"{'complete' if load_run(run).complete else 'partial ':9s} {run}")
    return 0


def _ls_timings(path: str | None) -> None:
    """``ls timings OUT``: bench's wall and CPU time per (suite, stage), summed over its invocations, and the total."""
    from robustness.schema.timings import read_timings, stage_totals

    if not path:
        raise ValueError("ls timings needs a directory: a bench output or a packed one")
    totals = stage_totals(read_timings(Path(path)))
    print(totals.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    wall, cpu = totals["wall_time_s"].sum(), totals["cpu_time_s"].sum()
    print(f"total: wall {wall:.1f} s ({wall / 3600:.2f} h), CPU {cpu:.1f} s ({cpu / 3600:.2f} h)")


def cmd_doctor(args: argparse.Namespace, command: str) -> int:
    from robustness.attack.recipes.availability import recipe_availability
    from robustness.resources.bundle import find_bundle
    from robustness.resources.doctor import doctor

    bundle = find_bundle(args.resources)
    if bundle is not None:
        missing = bundle.missing()
        lacks = f" lacks {', '.join(missing)}" if missing else ""
        print(f"[{'--' if missing else 'ok'}] bundle: {bundle.root}{lacks}")
    paths, _ = located(args.resources, nltk_data=args.nltk_data, lexicons=args.lexicons, mlm=args.mlm)
    lm = bundle.part("lm") if bundle is not None else None
    for status in doctor(nltk_data=paths["nltk_data"], lexicons_dir=paths["lexicons"], mlm=paths["mlm"], lm=lm):
        print(f"[{'ok' if status.available else '--'}] {status.name}: {status.detail}")
    print()
    for recipe in recipe_availability(nltk_data=paths["nltk_data"], lexicons_dir=paths["lexicons"],
                                      mlm=paths["mlm"]):
        print(f"[{'ok' if recipe.runnable else '--'}] {recipe.name}: {recipe.reason}")
    return 0
