"""What the one-call jobs of :mod:`robustness.api` (and so the commands, which call them) share: resource paths
located from the arguments, a suite and the resource bundle; the attack stack's resources with TextAttack imported
offline-safely; the checks of counts, an exit setting and an output file; the quality and re-validation stages;
and one progress bar per stage."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustness.requests import check_flags
from robustness.schema.settings import Setting, parse_setting

__all__ = ["StageBars", "attack_resources", "check_counts", "check_out_file", "chosen_setting", "located",
           "revalidate_runs", "score_quality"]

PathLike = str | os.PathLike[str]


def located(resources: PathLike | None, suite: Any = None, **given: PathLike | None
            ) -> tuple[dict[str, str | None], bool]:
    """``(paths, offline)``: each of ``given`` (a bundle part name -> a path or None) as given, else the suite's
    field, else the bundle's part (bundle: ``resources`` > the suite's ``resources`` > ``$ROBUSTNESS_RESOURCES``);
    ``offline`` is True when a bundle is in use, and then ``HF_HUB_OFFLINE`` is set (before transformers and
    huggingface_hub are imported: they read it at import time). Paths still None fall back to env vars downstream."""
    from robustness.resources.bundle import find_bundle  # the resources package imports numpy

    bundle = find_bundle(resources, getattr(suite, "resources", None))
    if bundle is not None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    paths = {}
    for name, value in given.items():
        fallback = getattr(suite, name, None) or (bundle.part(name) if bundle is not None else None)
        paths[name] = os.fspath(value) if value is not None else fallback
    return paths, bundle is not None


def attack_resources(paths: dict[str, str | None], cache_dir: PathLike | None, offline: bool,
                     import_attack: bool = True) -> Any:
    """The attack stack's :class:`~robustness.attack.recipes.Resources` from located ``paths`` (``nltk_data``,
    ``lexicons``, ``mlm``; None: env vars), with TextAttack imported offline-safely *before* any module that
    imports it at load time (the wrapper, the runner), unless ``import_attack`` is False."""
    from robustness.attack.recipes import Resources
    from robustness.resources.textattack_compat import import_textattack

    resources = Resources.from_args(nltk_data=paths.get("nltk_data"), lexicons_dir=paths.get("lexicons"),
                                    cache_dir=cache_dir, mlm=paths.get("mlm"), offline=True if offline else None)
    if import_attack:
        import_textattack(resources.nltk_data, offline=resources.offline)
    return resources


def check_out_file(path: Path, overwrite: bool) -> None:
    """``path`` may be written: not a directory, its folder can be created, and it does not exist unless
    ``overwrite`` (checked before any work)."""
    from robustness.outputs import check_output_dir

    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name")
    check_output_dir(path.parent)
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; pass --overwrite to replace it")


def check_counts(**values: Any) -> None:
    """The counts among ``values`` (keyword = the flag's destination, ``batch_size`` for ``--batch-size``) obey
    :data:`robustness.requests.COUNT_FLAGS`, as the command line checks its flags; None is not checked."""
    check_flags(argparse.Namespace(**values))


def chosen_setting(setting: Any = None, patience: Any = None) -> Setting:
    """``--setting S`` or its shorthand ``--patience P`` (not both); full depth when neither is given."""
    if setting is not None and patience is not None:
        raise ValueError("give --setting or --patience, not both")
    if patience is not None:
        chosen = _flag_setting("--patience", patience)
        if chosen.policy not in ("patience", "full"):
            raise ValueError(f"--patience takes an integer >= 1 or 'full', got {patience!r}; use --setting")
        return chosen
    return _flag_setting("--setting", "full" if setting is None else setting)


def _flag_setting(flag: str, value: Any) -> Setting:
    """``parse_setting(value)``, its error naming ``flag``."""
    try:
        return parse_setting(value)
    except ValueError as exc:
        raise ValueError(f"{flag} {value}: {exc}") from None


def _quiet(line: str) -> None:
    """The default ``log``: says nothing."""


def score_quality(run_dirs: list[Path], lm: str | None, batch_size: int | None, *, device: str = "cpu",
                  log: Callable[[str], Any] | None = None, prefix: str = "") -> dict[Path, int]:
    """The quality stage on ``device`` (its LM and the sentence encoder): every run checked before the LM loads
    (a run still going or a stranger's file is refused), then scored, resuming; ``batch_size`` None: 16 on the
    CPU, 64 on a GPU. Returns run dir -> texts newly scored, each also said to ``log``."""
    from robustness.devices import default_batch_size, use_device
    from robustness.quality import check_scorable, load_lm, score_run

    log = log or _quiet
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    for run_dir in run_dirs:
        check_scorable(run_dir)
    where = use_device(device)  # the sentence encoder loads there too
    batch_size = default_batch_size(where, cpu=16, gpu=64) if batch_size is None else batch_size
    model, known = load_lm(lm, device=where), {}  # a text's perplexity is computed once for all runs
    scored = {}
    for run_dir in run_dirs:
        scored[run_dir] = score_run(run_dir, model, batch_size=batch_size, known=known)
        log(f"{prefix}quality: {run_dir.name}: {scored[run_dir]} adversarial texts scored")
    return scored


def revalidate_runs(run_dirs: list[Path], preset: str, *, lm: str | None = None, lexicons: str | None = None,
                    nltk_data: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                    sentence_encoder: str | os.PathLike[str] | None = None, batch_size: int = 16,
                    progress: bool = False, log: Callable[[str], Any] | None = None, prefix: str = ""
                    ) -> dict[Path, int]:
    """The re-validation stage (:mod:`robustness.revalidate`) on ``run_dirs`` with the ``preset``'s thresholds,
    resuming, with one progress bar over every text left to check when ``progress``. Returns run dir -> texts
    newly re-checked, each also said to ``log`` (above the bar)."""
    from tqdm.auto import tqdm

    from robustness.revalidate import check_preset, load_checkers, pending, revalidate_run

    log = log or _quiet
    chosen = check_preset(preset)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    checkers = load_checkers(lm, lexicons=lexicons, nltk_data=nltk_data, cache_dir=cache_dir,
                             sentence_encoder=sentence_encoder)
    todo = {run_dir: pending(run_dir) for run_dir in run_dirs}
    known: dict[str, float] = {}  # a text's perplexity is computed once for all runs
    checked = {}
    with tqdm(total=sum(todo.values()), desc=f"{prefix}revalidate ({chosen.name})", unit="text",
              disable=not progress) as bar:
        for run_dir in run_dirs:
            checked[run_dir] = revalidate_run(run_dir, checkers, chosen, batch_size=batch_size, known=known,
                                              progress=bar.update)
            with tqdm.external_write_mode():
                log(f"{prefix}revalidate: {run_dir.name}: {checked[run_dir]} adversarial texts re-checked")
    return checked


class StageBars:
    """One progress bar per stage, none unless ``enabled``: a stage's bar opens at its first update and closes
    when it reaches its total, when the next stage starts, or when the ``with`` block ends."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self._bar, self._desc = enabled, None, None

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def counter(self, desc: str, total: int, unit: str) -> Any:
        """An ``update(n)`` callable for the stage ``desc`` (None when bars are off)."""
        if not self.enabled:
            return None

        def update(n: int) -> None:
            from tqdm.auto import tqdm

            if self._desc != desc:
                self.close()
                self._bar, self._desc = tqdm(total=total, desc=desc, unit=unit), desc
            self._bar.update(n)
            if self._bar.n >= total:
                self.close()

        return update

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar, self._desc = None, None
