"""The masked language model that bae and bert-attack draw replacements from: refuse one without a trained
MLM head (transformers would silently initialise it at random and warn "You should probably TRAIN")."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def mlm_head_problem(path: str | os.PathLike[str]) -> str | None:
    """None when ``path`` holds a masked LM whose MLM-head weights were saved; else one line saying why not.

    Loads ``AutoModelForMaskedLM`` from ``path`` (offline) and checks the loading info: weights that the
    masked-LM class expects but the directory lacks are exactly the head transformers would initialise at random.
    """
    config = Path(path) / "config.json"
    if not config.is_file():
        return f"masked language model dir {path} has no config.json"
    from transformers import AutoModelForMaskedLM

    try:
        with _quiet_transformers():
            _, info = AutoModelForMaskedLM.from_pretrained(os.fspath(path), output_loading_info=True,
                                                               trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        return f"{path} does not load as a masked language model: {str(err).strip().splitlines()[0]}"
    if info["missing_keys"]:
        archs = ", ".join(json.loads(config.read_text()).get("architectures") or []) or "no architectures listed"
        return (f"{path} has no trained masked-LM head ({len(info['missing_keys'])} weights missing, e.g. "
                f"{sorted(info['missing_keys'])[0]}; saved as {archs})")
    return None
