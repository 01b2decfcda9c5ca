"""A saved model directory, read without loading the model: is it whole, and what a run records of it (layers,
head, label names).

No torch, no transformers (except for configs older than ``num_layers``): suite validation and a driver that
attacks nothing itself (Ray, ``--part``) read saved models this way, so they do not pay seconds of imports
while workers that need them start. The facts equal :class:`~robustness.models.config.PabeeConfig`'s
(``tests/models/test_saved.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustness.provenance import PARTIAL_DIR, read_json_object

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def check_model_dir(path: str | Path) -> Path:
    """``path`` holds a whole saved model: ``ValueError`` naming a missing or half-saved one."""
    path = Path(path)
    if PARTIAL_DIR.match(path.name):
        raise ValueError(f"{path} is a half-saved model left by an interrupted save; train it again")
    if not path.is_dir():
        raise ValueError(f"no model at {path} (not a directory)")
    has_config, has_weights = (path / CONFIG_NAME).is_file(), (path / WEIGHTS_NAME).is_file()
    if not has_config and not has_weights:
        raise ValueError(f"{path} is not a saved PABEE model (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    foreign = _foreign_type(path / CONFIG_NAME) if has_config else None
    if foreign is not None:  # another library's model (with or without weights), not a half-saved one of ours
        raise ValueError(f"{path} is not a saved PABEE model ({CONFIG_NAME} has model_type {foreign!r}, not pabee "
                         "or the older format); give a model made by robustness train")
    if not has_config or not has_weights:
        missing = WEIGHTS_NAME if has_config else CONFIG_NAME
        raise ValueError(f"{path} is a half-saved model ({missing} missing); train it again with --overwrite")
    return path


def _foreign_type(config_path: Path) -> str | None:
    """The ``model_type`` of a config that is another library's (a ``model_type`` other than "pabee", no older
    ``format``); None otherwise, also for a file that is no JSON object (its reader names that problem)."""
    import json

    try:
        values = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(values, dict) or values.get("model_type") in (None, "pabee") or "format" in values:
        return None
    return str(values.get("model_type"))


@dataclass(frozen=True)
class ModelFacts:
    """What ``spec.json`` records of a model: its layers L, head ("pabee" or "full") and label names."""

    num_layers: int
    head: str
    label_names: tuple[str, ...]


def saved_facts(path: str | Path) -> ModelFacts:
    """The facts of the whole model saved in ``path`` (its ``config.json``; the format of today or of before
    the model was a ``PreTrainedModel``); ``ValueError`` naming the file if it is no model config."""
    config_path = check_model_dir(path) / CONFIG_NAME
    values = read_json_object(config_path)
    try:
        names = values.get("label_names")
        if names is None and values.get("id2label"):
            names = [values["id2label"][key] for key in sorted(values["id2label"], key=int)]
        if names is None:
            names = [f"LABEL_{i}" for i in range(int(values.get("num_labels") or 2))]
        if "num_layers" in values:
            layers = int(values["num_layers"])
        else:  # configs from before num_layers was stored: the backbone's own count
            from transformers import AutoConfig

            backbone = dict(values["backbone"])
            layers = int(AutoConfig.for_model(backbone.pop("model_type"), **backbone).num_hidden_layers)
        return ModelFacts(layers, str(values.get("head", "pabee")), tuple(str(name) for name in names))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{config_path}: not a robustness model config: {exc}") from None
