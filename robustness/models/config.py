"""The stored description of a PABEE model (``config.json``): enough to rebuild it offline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from transformers import AutoConfig, PretrainedConfig

HEADS = ("pabee", "full")
POOLINGS = ("cls", "mean")
FORMAT = "robustness-pabee"
FORMAT_VERSION = 1


def default_dropout(backbone_config: PretrainedConfig) -> float:
    for name in ("classifier_dropout", "classifier_dropout_prob", "seq_classif_dropout", "hidden_dropout_prob"):
        value = getattr(backbone_config, name, None)
        if value is not None:
            return float(value)
    return 0.1


@dataclass
class PabeeConfig:
    """Everything needed to rebuild a :class:`PabeeModel` offline; stored as ``config.json``."""

    backbone: dict[str, Any]  # the backbone's PretrainedConfig.to_dict() (includes model_type)
    head: str  # "pabee" (one classifier per layer) or "full" (one classifier on layer L)
    num_labels: int
    label_names: list[str]
    num_layers: int  # L, transformer layers of the backbone
    classifier_dropout: float = 0.1  # dropout before every internal classifier
    own_pooler: bool = False  # True: a new dense+tanh pooler (backbone has none); False: the backbone's pooler
    attn_implementation: str = "sdpa"  # "eager" or "sdpa" (both step identically); default: transformers' choice
    backbone_source: str | None = None  # name or path the pretrained backbone came from (provenance only)
    # What each internal classifier pools: "cls" (the layer's [CLS] state; the paper's choice) or "mean" (masked
    # mean of the layer's token states, fed to the same pooler) for encoders trained with mean pooling, such as
    # all-MiniLM-L6-v2, whose lower-layer [CLS] states barely vary with the input.
    pooling: str = "cls"
    extra: dict[str, Any] = field(default_factory=dict)  # free-form metadata kept across save/load

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got {self.head!r}")
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, int) or self.num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {self.num_labels!r}")
        if len(self.label_names) != self.num_labels:
            raise ValueError(f"label_names has {len(self.label_names)} names for {self.num_labels} labels")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}")
        if "model_type" not in self.backbone:
            raise ValueError("backbone config dict lacks model_type")
        self.label_names = [str(name) for name in self.label_names]
        self.backbone = json.loads(json.dumps(self.backbone))  # as stored on disk (e.g. id2label keys become str)

    def backbone_config(self) -> PretrainedConfig:
        """The backbone's config object, rebuilt from the stored dict (no hub access)."""
        values = dict(self.backbone)
        return AutoConfig.for_model(values.pop("model_type"), **values)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PabeeConfig:
        if values.get("format") != FORMAT:
            raise ValueError(f"not a PABEE model config (format != {FORMAT!r}); was it saved by PabeeModel?")
        if values.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported PABEE config format_version {values.get('format_version')!r}")
        return cls(**{k: v for k, v in values.items() if k not in ("format", "format_version")})
