"""Checkpoints of the papers' reference code, converted into a :class:`~robustness.models.pabee.PabeeModel`.

Two layouts are read (their ``state_dict`` names, as the Hugging Face research projects save them; ``P`` is
the backbone's prefix, ``bert``, ``albert`` or ``roberta``, and L the number of layers):

* ``pabee-reference`` (``bert-loses-patience``: BERT and ALBERT): ``P.*`` (the backbone with its pooler) and
  ``classifiers.{0..L-1}.{weight,bias}``. Classifier i reads the one shared pooler on layer i + 1's first token
  (BERT: ``BertPooler``, dense + tanh; ALBERT: ``pooler`` then ``pooler_activation``, tanh), after dropout
  (BERT ``hidden_dropout_prob``, ALBERT ``classifier_dropout_prob``). That is the suite's own PABEE model.
* ``deebert-reference`` (``deebert``: BERT and RoBERTa): ``P.embeddings.*``, ``P.encoder.layer.*``, a highway
  per layer ``P.encoder.highway.{i}.pooler.dense.*`` (a ``BertPooler``: dense + tanh of the first token, also
  for RoBERTa) and ``P.encoder.highway.{i}.classifier.*``, and the final exit ``P.pooler.dense.*`` +
  ``classifier.*`` (a plain linear on the pooler, also for RoBERTa), dropout ``hidden_dropout_prob``. Layers
  1..L-1 exit through highways 0..L-2; layer L through the final pooler and classifier, the head DeeBERT's
  first training stage trains. Highway L-1 is dropped: its second stage excludes it from the loss, so it keeps
  its initial weights (the reference evaluation still lets it fire at layer L: a quirk not reproduced). Each
  internal classifier has its own pooler: ``PabeeConfig.pooler_per_layer``.

Buffers some transformers versions saved (``embeddings.position_ids``, ``embeddings.token_type_ids``) are
ignored and LayerNorm ``gamma``/``beta`` read as ``weight``/``bias``; any other missing or unexpected key
refuses the checkpoint. ``pytorch_model.bin`` is read with ``torch.load(weights_only=True)``: no arbitrary
object is unpickled.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

FORMATS = ("pabee-reference", "deebert-reference")
BACKBONES = {"pabee-reference": ("bert", "albert"), "deebert-reference": ("bert", "roberta")}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_IGNORED = re.compile(r"^[a-z]+\.embeddings\.(position_ids|token_type_ids)$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

__all__ = ["BACKBONES", "FORMATS", "Converted", "convert_state_dict", "read_state_dict", "source_names"]


@dataclass(frozen=True)
class Converted:
    """A reference state dict renamed for the suite's model: ``state`` (our names), ``dropped`` (reference keys
    deliberately left out, e.g. DeeBERT's last highway) and ``ignored`` (saved buffers)."""

    state: dict[str, torch.Tensor]
    dropped: tuple[str, ...]
    ignored: tuple[str, ...]


def check_format(fmt: str, model_type: str, where: str) -> None:
    """``ValueError`` unless ``fmt`` is known and the reference code of ``fmt`` has a ``model_type`` backbone."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    if model_type not in BACKBONES[fmt]:
        raise ValueError(f"{where}: model_type {model_type!r}, but {fmt} checkpoints are "
                         f"{' or '.join(BACKBONES[fmt])}; check --format")


def source_names(fmt: str, prefix: str, num_layers: int, target: str) -> str:
    """The reference checkpoint's name of our parameter ``target`` (format ``fmt``, backbone prefix ``prefix``)."""
    last = num_layers - 1
    if target.startswith("backbone."):
        return f"{prefix}.{target[len('backbone.'):]}"
    head = re.fullmatch(r"classifiers\.(\d+)\.(weight|bias)", target)
    if head:
        k, kind = int(head[1]), head[2]
        if fmt == "pabee-reference":
            return target
        return f"classifier.{kind}" if k == last else f"{prefix}.encoder.highway.{k}.classifier.{kind}"
    pool = re.fullmatch(r"poolers\.(\d+)\.0\.(weight|bias)", target)
    if pool and fmt == "deebert-reference":
        k, kind = int(pool[1]), pool[2]
        return f"{prefix}.pooler.dense.{kind}" if k == last else f"{prefix}.encoder.highway.{k}.pooler.dense.{kind}"
    raise ValueError(f"no {fmt} name for parameter {target}")


def _dropped_names(fmt: str, prefix: str, num_layers: int) -> set[str]:
    """Reference keys that are read but not used: DeeBERT's untrained last highway."""
    if fmt != "deebert-reference":
        return set()
    base = f"{prefix}.encoder.highway.{num_layers - 1}"
    return {f"{base}.{part}.{kind}" for part in ("pooler.dense", "classifier") for kind in ("weight", "bias")}


def _canonical(key: str) -> str:
    """Old LayerNorm parameter names (``gamma``/``beta``) as transformers reads them."""
    return re.sub(r"(LayerNorm|layer_norm)\.gamma$", r"\1.weight", re.sub(r"(LayerNorm|layer_norm)\.beta$",
                                                                        r"\1.bias", key))


def _listed(keys: Iterable[str], limit: int = 1) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def convert_state_dict(state: dict[str, torch.Tensor], fmt: str, prefix: str, num_layers: int,
                       targets: Iterable[str], where: str) -> Converted:
    """Rename a reference ``state`` dict to our parameter names ``targets`` (our model's ``state_dict`` keys).
    Missing or unexpected keys are one ``ValueError`` line naming ``where`` and the first of each."""
    state = {_canonical(key): value for key, value in state.items()}
    wanted = {source_names(fmt, prefix, num_layers, target): target for target in targets}
    dropped = _dropped_names(fmt, prefix, num_layers) & state.keys()
    ignored = {key for key in state if _IGNORED.match(key) and key not in wanted}
    missing = wanted.keys() - state.keys()
    unexpected = state.keys() - wanted.keys() - dropped - ignored
    if missing or unexpected:
        parts = [f"{len(missing)} missing ({_listed(missing)})" if missing else "",
                 f"{len(unexpected)} unexpected ({_listed(unexpected)})" if unexpected else ""]
        raise ValueError(f"{where} is not a {fmt} checkpoint: keys {'; '.join(p for p in parts if p)}; "
                         "check --format")
    return Converted({target: state[name] for name, target in wanted.items()}, tuple(sorted(dropped)),
                     tuple(sorted(ignored)))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` or ``pytorch_model.bin`` (``weights_only``: tensors and plain
    containers only; a pickle of other objects is refused)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        message = " ".join(str(exc).split())[:120]
        raise ValueError(f"{path}: cannot read the weights safely ({type(exc).__name__}: {message})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds no flat state dict of tensors; save the model with save_pretrained")
    return state


def weights_file(folder: Path) -> Path:
    """The weights of a reference checkpoint folder: ``model.safetensors``, else ``pytorch_model.bin``."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ValueError(f"{folder} holds no {' or '.join(WEIGHT_FILES)} (a sharded checkpoint is not supported)")


def looks_like_hub_id(source: str) -> bool:
    """Whether ``source``, which is no local path, may name a Hugging Face hub repository (``owner/name``)."""
    return bool(_HUB_ID.match(source)) and not Path(source).exists()
