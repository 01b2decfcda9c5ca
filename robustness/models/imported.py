"""``robustness import``: a checkpoint of the papers' reference code (:mod:`robustness.models.reference`) as a
saved :class:`~robustness.models.pabee.PabeeModel` directory, written as a trained one is (atomically, with
``fingerprint.json``), plus ``import.json`` (where it came from) instead of ``train.json``.

The source is a local folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``, and the
tokenizer files unless another tokenizer is named) or, online, a hub id (downloaded with ``huggingface_hub``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustness.models.fingerprint import file_sha256
from robustness.models.reference import (
    check_format,
    convert_state_dict,
    looks_like_hub_id,
    read_state_dict,
    weights_file,
)

if TYPE_CHECKING:
    from robustness.models.pabee import PabeeModel

__all__ = ["ReferenceSource", "import_reference", "load_reference", "resolve_source"]

IMPORT_FILE = "import.json"
_HUB_FILES = ["config.json", "model.safetensors", "pytorch_model.bin", "*.txt", "*.json", "*.model"]


@dataclass(frozen=True)
class ReferenceSource:
    """A reference checkpoint on this machine: ``folder``, what the user named (``source``), and the hub
    commit it was downloaded at (``revision``; None for a local folder)."""

    folder: Path
    source: str
    revision: str | None = None


def resolve_source(source: str | Path) -> ReferenceSource:
    """A local folder as is; otherwise a hub id, downloaded (config, weights, tokenizer files) into the hub
    cache. ``ValueError`` naming ``source`` when it is neither (offline, a hub id fails in one line)."""
    text = str(source)
    path = Path(text)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{path} is a file; give the checkpoint's folder (config.json + weights)")
        return ReferenceSource(path.resolve(), text)
    if not looks_like_hub_id(text):
        raise ValueError(f"{text}: no such folder (and not a hub id)")
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(text, allow_patterns=_HUB_FILES))
    except (OSError, ValueError) as exc:  # offline, unknown repo, invalid id (huggingface_hub's errors are these)
        message = " ".join(str(exc).split())[:100]
        raise ValueError(f"{text}: no such local folder, and the hub did not give it ({message})") from None
    return ReferenceSource(folder, text, folder.name)


def load_reference(source: ReferenceSource, fmt: str, label_names: list[str] | None = None
                   ) -> tuple[PabeeModel, dict[str, Any]]:
    """``(model, record)``: the reference checkpoint in ``source`` as a ``PabeeModel`` (eval mode) with
    every weight taken from the checkpoint, and what ``import.json`` records of the conversion."""
    from transformers import AutoConfig, AutoModel

    from robustness.models.config import PabeeConfig
    from robustness.models.pabee import PabeeModel
    from robustness.provenance import read_json_object

    config_path = source.folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{source.folder} has no config.json; give the folder the reference code saved")
    if "model_type" not in read_json_object(config_path):  # configs from transformers < 2.4 lack it
        raise ValueError(f"{config_path} has no model_type; add \"model_type\": \"bert\" (or albert, roberta) to it")
    try:
        backbone_config = AutoConfig.from_pretrained(str(source.folder), trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{config_path}: not a transformers config ({' '.join(str(exc).split())[:100]})") from None
    model_type = backbone_config.model_type
    check_format(fmt, model_type, str(config_path))
    if label_names is None:
        label_names = [str(backbone_config.id2label[i]) for i in range(backbone_config.num_labels)]
    if len(label_names) != backbone_config.num_labels or len(label_names) < 2:
        raise ValueError(f"{config_path} has num_labels {backbone_config.num_labels}; "
                         f"give {max(backbone_config.num_labels, 2)} --label-names (regression is not supported)")
    backbone_config.architectures = None  # the reference classes; the backbone is a plain AutoModel
    dropout = (backbone_config.classifier_dropout_prob if model_type == "albert"
               else backbone_config.hidden_dropout_prob)  # what the reference heads use
    backbone = AutoModel.from_config(backbone_config)
    config = PabeeConfig(
        backbone=backbone.config.to_dict(), head="pabee", label_names=label_names,
        num_layers=int(backbone_config.num_hidden_layers), classifier_dropout=float(dropout),
        own_pooler=False, backbone_attn_implementation=backbone.config._attn_implementation,
        pooler_per_layer=fmt == "deebert-reference", extra={"import_format": fmt},
    )
    model = PabeeModel(config, backbone)
    weights = weights_file(source.folder)
    converted = convert_state_dict(read_state_dict(weights), fmt, model_type, config.num_layers,
                                   model.state_dict().keys(), str(weights))
    try:
        model.load_state_dict(converted.state, strict=True)
    except RuntimeError as exc:  # shapes that disagree with config.json
        raise ValueError(f"{weights} does not fit {config_path}: {' '.join(str(exc).split())[:120]}") from None
    record = {
        "format": fmt, "source": source.source, "source_folder": str(source.folder),
        "hub_revision": source.revision, "weights_file": weights.name, "weights_sha256": file_sha256(weights),
        "backbone_model_type": model_type, "num_layers": config.num_layers, "label_names": list(label_names),
        "classifier_dropout": config.classifier_dropout, "pooler_per_layer": config.pooler_per_layer,
        "dropped_keys": list(converted.dropped), "ignored_keys": list(converted.ignored),
    }
    return model.eval(), record


def import_reference(source: str | Path, fmt: str, out: str | Path, *, tokenizer: str | Path | None = None,
                     label_names: list[str] | None = None, overwrite: bool = False,
                     command: str | None = None) -> Path:
    """Convert the reference checkpoint ``source`` (format ``fmt``) into a model directory ``out``: the model
    (``save_pretrained``, fingerprinted), the tokenizer (the source's, or ``tokenizer``) and ``import.json``,
    all appearing at once. ``out`` is checked as ``train`` checks it (``overwrite`` replaces a model)."""
    from transformers import AutoTokenizer

    from robustness.models.train import check_train_out
    from robustness.provenance import atomic_directory, versions, write_json_atomic

    out = check_train_out(out, overwrite)
    resolved = resolve_source(source)
    model, record = load_reference(resolved, fmt, label_names)
    tokenizer_source = str(tokenizer) if tokenizer is not None else str(resolved.folder)
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        message = " ".join(str(exc).split())[:80]
        raise ValueError(f"{tokenizer_source}: no tokenizer ({message}); name one with --tokenizer") from None
    extra: dict[str, Any] = {"tokenizer": str(tokenizer) if tokenizer is not None else str(source),
                             "command": command, "versions": versions()}
    with atomic_directory(out, replace=True) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_json_atomic(tmp / IMPORT_FILE, {**record, **extra})
    return out
