"""The stored description of a PABEE model (``config.json``): a Hugging Face ``PretrainedConfig`` with its own
``model_type`` ("pabee"), enough to rebuild the model offline (the backbone's config is embedded)."""

from __future__ import annotations

import json
from typing import Any

from transformers import AutoConfig, PretrainedConfig

from robustness.schema.settings import parse_setting

HEADS = ("pabee", "full")
POOLINGS = ("cls", "mean")
#: ``format`` of configs written before the model was a ``PreTrainedModel`` (no ``model_type``); still read.
LEGACY_FORMAT = "robustness-pabee"


def default_dropout(backbone_config: PretrainedConfig) -> float:
    for name in ("classifier_dropout", "classifier_dropout_prob", "seq_classif_dropout", "hidden_dropout_prob"):
        value = getattr(backbone_config, name, None)
        if value is not None:
            return float(value)
    return 0.1


class PabeeConfig(PretrainedConfig):
    """Everything needed to rebuild a :class:`~robustness.models.pabee.PabeeModel` offline.

    * ``backbone``: the backbone's ``PretrainedConfig.to_dict()`` (includes its ``model_type``);
    * ``head``: "pabee" (one classifier per layer) or "full" (one classifier on layer L);
    * ``label_names`` (stored as ``id2label``), ``num_layers`` (L);
    * ``classifier_dropout``: dropout before every internal classifier;
    * ``own_pooler``: True: a new dense+tanh pooler (the backbone has none); False: the backbone's pooler;
    * ``backbone_attn_implementation``: "eager" or "sdpa" (both step identically);
    * ``backbone_source``: name or path the pretrained backbone came from (provenance only);
    * ``pooling``: what each internal classifier pools: "cls" (the layer's [CLS] state; the paper's choice) or
      "mean" (masked mean of the layer's token states, fed to the same pooler) for encoders trained with mean
      pooling, such as all-MiniLM-L6-v2, whose lower-layer [CLS] states barely vary with the input;
    * ``pooler_per_layer``: False (default): every internal classifier reads the one shared pooler (the backbone's,
      or the own one); True: classifier k has its own dense+tanh pooler on its layer's first (or mean) token,
      ``poolers[k]``, as DeeBERT's highways do; the shared poolers are then absent (the backbone's is removed).
      Written to ``config.json`` only when True, so configs and fingerprints of models without it are unchanged;
    * ``exit_setting``: the setting ``forward`` exits at unless told otherwise (a
      :class:`~robustness.schema.settings.Setting` label: "full", "patience:2", "entropy:0.35", ...);
    * ``extra``: free-form metadata kept across save/load.

    ``PabeeConfig()`` without a backbone is valid only as transformers' template of defaults.
    """

    model_type = "pabee"

    def __init__(
        self,
        backbone: dict[str, Any] | None = None,
        head: str = "pabee",
        num_labels: int | None = None,  # None: from label_names / id2label, else 2
        label_names: list[str] | None = None,
        num_layers: int = 1,
        classifier_dropout: float = 0.1,
        own_pooler: bool = False,
        backbone_attn_implementation: str = "sdpa",
        backbone_source: str | None = None,
        pooling: str = "cls",
        exit_setting: str = "full",
        pooler_per_layer: bool = False,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Legacy configs (``format`` "robustness-pabee") stored the backbone's attention as ``attn_implementation``,
        # which transformers reserves; it is dropped (eager and sdpa step identically) and the default applies.
        if kwargs.pop("format", LEGACY_FORMAT) != LEGACY_FORMAT:
            raise ValueError("not a PABEE model config (format != 'robustness-pabee')")
        kwargs.pop("format_version", None)
        id2label = kwargs.pop("id2label", None)
        kwargs.pop("label2id", None)
        if label_names is None and id2label:
            label_names = [id2label[k] for k in sorted(id2label, key=int)]
        if num_labels is None:
            num_labels = len(label_names) if label_names is not None else 2
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        if label_names is None:
            label_names = [f"LABEL_{i}" for i in range(num_labels)]
        if len(label_names) != num_labels:
            raise ValueError(f"label_names has {len(label_names)} names for {num_labels} labels")
        if head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got {head!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        if not 0.0 <= classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {classifier_dropout}")
        if backbone is not None and "model_type" not in backbone:
            raise ValueError("backbone config dict lacks model_type")
        names = [str(name) for name in label_names]
        super().__init__(id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}, **kwargs)
        # as stored on disk (e.g. id2label keys become str)
        self.backbone = json.loads(json.dumps(backbone)) if backbone is not None else None
        self.head = head
        self.num_layers = num_layers
        self.classifier_dropout = float(classifier_dropout)
        self.own_pooler = bool(own_pooler)
        self.backbone_attn_implementation = backbone_attn_implementation
        self.backbone_source = backbone_source
        self.pooling = pooling
        if not isinstance(pooler_per_layer, bool):
            raise ValueError(f"pooler_per_layer must be true or false, got {pooler_per_layer!r}")
        self.pooler_per_layer = pooler_per_layer
        self.exit_setting = parse_setting(exit_setting).label
        self.extra = dict(extra or {})

    @property
    def label_names(self) -> list[str]:
        return [self.id2label[i] for i in range(self.num_labels)]

    @label_names.setter
    def label_names(self, names: list[str]) -> None:
        if len(names) != self.num_labels:
            raise ValueError(f"label_names has {len(names)} names for {self.num_labels} labels")
        self.id2label = {i: str(n) for i, n in enumerate(names)}
        self.label2id = {str(n): i for i, n in enumerate(names)}

    def to_dict(self) -> dict[str, Any]:
        """transformers' dict of the config, without ``pooler_per_layer`` when it is False (its default): a
        model saved before the field existed and one saved after it have the same config.json and fingerprint."""
        values = super().to_dict()
        if not values.get("pooler_per_layer", False):
            values.pop("pooler_per_layer", None)
        return values

    def backbone_config(self) -> PretrainedConfig:
        """The backbone's config object, rebuilt from the stored dict (no hub access)."""
        if self.backbone is None:
            raise ValueError("this PabeeConfig has no backbone config")
        values = dict(self.backbone)
        return AutoConfig.for_model(values.pop("model_type"), **values)
