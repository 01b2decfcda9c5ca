"""``robustness trigger``: search a universal slowdown trigger and evaluate it, or replay a finished one on
another model or setting (:mod:`robustness.attack.trigger`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from robustness.commands.common import attack_resources, located

__all__ = ["cmd_trigger"]


def _print_rows(rows: list[dict]) -> None:
    for row in rows:
        print(f"{row['model_id']} @ {row['setting']}: prefix {row['prefix']!r}, mean exit "
              f"{row['clean_mean_exit']:.3f} -> {row['trigger_mean_exit']:.3f} (shift {row['exit_shift']:+.3f}), "
              f"efficiency gain left {row['efficiency_gain_left']:.3f}, accuracy at exit "
              f"{row['clean_accuracy']:.3f} -> {row['trigger_accuracy']:.3f}")


def cmd_trigger(args: argparse.Namespace, command: str) -> int:
    args = located(args)
    if not args.setting:
        raise ValueError("robustness trigger needs --setting (e.g. --setting patience:2)")
    from robustness.models.pabee import check_model_dir

    check_model_dir(args.model)
    attack_resources(args)  # TextAttack imported offline-safely before the slowdown score's module
    from robustness.attack.trigger import TriggerSpec, read_rows, replay_trigger, resolve_setting, run_trigger

    if args.replay:
        if args.out:
            raise ValueError("--replay writes into the trigger directory it replays; drop --out")
        rows = replay_trigger(Path(args.replay), args.model, args.setting, batch_size=args.batch_size,
                              max_length=args.max_length, data_dir=args.data_dir)
        _print_rows(rows)
        print(f"replayed {len(rows)} new setting(s) into {Path(args.replay) / 'evaluation.jsonl'}")
        return 0
    if not args.out:
        raise ValueError("robustness trigger needs --out DIR (or --replay DIR)")
    setting = resolve_setting(args.setting[0], args.model)
    spec = TriggerSpec(model_id=Path(args.model).name, model_dir=str(args.model), setting=setting.label,
                       length=args.length, dataset=args.dataset, train_split=args.train_split, train_n=args.train_n,
                       split=args.split, n=args.n, seed=args.seed, candidates=args.candidates,
                       iterations=args.iterations, beam=args.beam, vocabulary=args.vocabulary, score=args.score,
                       batch_size=args.batch_size, max_length=args.max_length, data_dir=args.data_dir)
    out = run_trigger(spec, Path(args.out), evaluate_on=args.setting[1:], command=command, overwrite=args.overwrite)
    _print_rows(read_rows(out))
    print(f"trigger complete: {out}")
    return 0
