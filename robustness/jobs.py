"""What the one-call jobs of :mod:`robustness.api` share: resource paths located from the arguments, a suite
and the resource bundle; the attack stack's resources with TextAttack imported offline-safely; the checks of an
output file; and one progress bar per stage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from robustness.resources.bundle import find_bundle

__all__ = ["StageBars", "attack_resources", "check_out_file", "located"]

PathLike = str | os.PathLike[str]


def located(resources: PathLike | None, suite: Any = None, **given: PathLike | None
            ) -> tuple[dict[str, str | None], bool]:
    """``(paths, offline)``: each of ``given`` (a bundle part name -> a path or None) as given, else the suite's
    field, else the bundle's part (bundle: ``resources`` > the suite's ``resources`` > ``$ROBUSTNESS_RESOURCES``);
    ``offline`` is True when a bundle is in use, and then ``HF_HUB_OFFLINE`` is set (before transformers and
    huggingface_hub are imported: they read it at import time). Paths still None fall back to env vars downstream."""
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
        raise ValueError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")


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
