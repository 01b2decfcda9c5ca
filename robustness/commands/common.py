"""What several subcommands share: resource paths located from flags, suite fields and the bundle; TextAttack
imported offline-safely before the attack stack; the exit setting of ``--setting``/``--patience``; the checks
of an output file; the quality and re-validation stages."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from robustness.suite.specs import parse_setting

__all__ = ["attack_resources", "check_out_file", "import_attack_stack", "located", "revalidate_runs", "score_quality",
           "setting_arg"]


def check_out_file(path: Path, overwrite: bool) -> None:
    """``path`` may be written: not a directory, its folder can be created, and it does not exist unless
    ``overwrite`` (before any work)."""
    from robustness.outputs import check_output_dir

    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name")
    check_output_dir(path.parent)
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; pass --overwrite to replace it")


def located(args: argparse.Namespace, suite=None) -> argparse.Namespace:
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


def attack_resources(args: argparse.Namespace, import_attack: bool = True):
    """Resources from located flags (:func:`located`; else env vars), with TextAttack imported offline-safely
    *before* any module that imports it at load time (the wrapper, the runner); ``import_attack=False`` leaves
    that import to :func:`import_attack_stack`, later."""
    from robustness.attack.recipes import Resources

    resources = Resources.from_args(nltk_data=args.nltk_data, lexicons_dir=args.lexicons,
                                    cache_dir=args.cache_dir, mlm=args.mlm, offline=args.offline)
    if import_attack:
        import_attack_stack(resources)
    return resources


def import_attack_stack(resources) -> None:
    """TextAttack, imported offline-safely (:func:`~robustness.resources.textattack_compat.import_textattack`)."""
    from robustness.resources.textattack_compat import import_textattack

    import_textattack(resources.nltk_data, offline=resources.offline)


def setting_arg(args: argparse.Namespace):
    """``--setting S`` or its shorthand ``--patience P`` (not both); full depth when neither is given."""
    if args.setting is not None and args.patience is not None:
        raise ValueError("give --setting or --patience, not both")
    if args.patience is not None:
        setting = _flag_setting("--patience", args.patience)
        if setting.policy not in ("patience", "full"):
            raise ValueError(f"--patience takes an integer >= 1 or 'full', got {args.patience!r}; use --setting")
        return setting
    return _flag_setting("--setting", "full" if args.setting is None else args.setting)


def _flag_setting(flag: str, value: str):
    """``parse_setting(value)``, its error naming ``flag``."""
    try:
        return parse_setting(value)
    except ValueError as exc:
        raise ValueError(f"{flag} {value}: {exc}") from None


def score_quality(run_dirs: list[Path], lm: str | None, batch_size: int | None, prefix: str = "",
                  device: str = "cpu") -> None:
    """The quality stage on ``device`` (its LM and the sentence encoder); ``batch_size`` None: 16 on the CPU,
    64 on a GPU."""
    from robustness.devices import default_batch_size, use_device
    from robustness.quality import check_scorable, load_lm, score_run

    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    for run_dir in run_dirs:  # every run before the LM loads: a run still going or a stranger's file is refused
        check_scorable(run_dir)
    where = use_device(device)  # the sentence encoder loads there too
    batch_size = default_batch_size(where, cpu=16, gpu=64) if batch_size is None else batch_size
    model, known = load_lm(lm, device=where), {}  # a text's perplexity is computed once for all runs
    for run_dir in run_dirs:
        added = score_run(run_dir, model, batch_size=batch_size, known=known)
        print(f"{prefix}quality: {run_dir.name}: {added} adversarial texts scored")


def revalidate_runs(run_dirs: list[Path], preset: str, args: argparse.Namespace, prefix: str = "") -> None:
    """The re-validation stage on ``run_dirs`` (``args``: located ``lm``, ``nltk_data``, ``lexicons``,
    ``cache_dir``, ``sentence_encoder``, ``batch_size``), with one progress bar over every text left to check."""
    from tqdm.auto import tqdm

    from robustness.revalidate import check_preset, load_checkers, pending, revalidate_run

    chosen = check_preset(preset)
    batch_size = getattr(args, "batch_size", 16)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    checkers = load_checkers(args.lm, lexicons=args.lexicons, nltk_data=args.nltk_data,
                             cache_dir=getattr(args, "cache_dir", None),
                             sentence_encoder=getattr(args, "sentence_encoder", None))
    todo = {run_dir: pending(run_dir) for run_dir in run_dirs}
    known: dict[str, float] = {}  # a text's perplexity is computed once for all runs
    with tqdm(total=sum(todo.values()), desc=f"{prefix}revalidate ({chosen.name})", unit="text") as bar:
        for run_dir in run_dirs:
            added = revalidate_run(run_dir, checkers, chosen, batch_size=batch_size, known=known,
                                   progress=bar.update)
            bar.write(f"{prefix}revalidate: {run_dir.name}: {added} adversarial texts re-checked")
