"""PABEE classifier (Zhou et al. 2020, "BERT Loses Patience") over a Hugging Face encoder.

Layers are numbered 1..L. Internal classifier i reads layer i's pooled state:
``logits_i = W_i · dropout(pool(r_i)) + b_i`` with ``r_i`` the [CLS] state ``h_i[:, 0]`` (``pooling="cls"``,
the paper) or the masked mean of the token states (``pooling="mean"``). ``pool`` is the backbone's own
pooler (dense + tanh) shared by all layers when the backbone has one (BERT, ALBERT, RoBERTa via ``AutoModel``;
as in the reference code), else a new dense + tanh pooler shared across layers (DistilBERT).

* ``head="pabee"``: one classifier per layer, loss ``Σ_i i·CE_i / Σ_i i`` (the reference weighting).
* ``head="full"``: the baseline, one classifier on layer L, loss ``CE_L``.

Two inference modes agree exactly (tests check it): :meth:`PabeeModel.all_layer_logits` followed by
:meth:`PabeeModel.exit_from_layer_logits` (one pass, the exit of any setting derived afterwards), and
``early_exit``, which steps the backbone layer by layer and drops exited examples from the working batch
(:mod:`robustness.models.stepping`). Exits are decided per example (:func:`robustness.models.exits.setting_exit`).

The model is a Hugging Face ``PreTrainedModel`` (``model_type`` "pabee"), registered with ``AutoConfig``,
``AutoModel`` and ``AutoModelForSequenceClassification`` when :mod:`robustness` is imported
(:mod:`robustness.models.registry`). On disk it is ``config.json`` (a
:class:`~robustness.models.config.PabeeConfig`, which embeds the backbone config so the backbone is rebuilt
without the hub), ``model.safetensors``, written by ``save_pretrained``, and ``fingerprint.json``
(:mod:`robustness.models.fingerprint`); the caller saves the tokenizer beside. Directories written before
(``"format": "robustness-pabee"``, no ``model_type``) load unchanged. Loading never runs code from the
directory (``trust_remote_code=False``) and never unpickles (safetensors only).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import ModelOutput

from robustness.models.backbones import get_adapter
from robustness.models.config import HEADS, LEGACY_FORMAT, PabeeConfig, default_dropout
from robustness.models.exits import Setting, parse_setting, setting_exit
from robustness.models.fingerprint import write_fingerprint
from robustness.models.saved import CONFIG_NAME, WEIGHTS_NAME, check_model_dir
from robustness.models.stepping import EarlyExitOutput, LayerStepping
from robustness.provenance import PARTIAL_DIR, read_json_object

__all__ = [
    "CONFIG_NAME",
    "HEADS",
    "WEIGHTS_NAME",
    "EarlyExitOutput",
    "PabeeConfig",
    "PabeeModel",
    "PabeeOutput",
    "check_model_dir",
    "load_model_and_tokenizer",
    "load_tokenizer",
]


@dataclass
class PabeeOutput(ModelOutput):
    """What ``forward`` returns (a ``transformers`` ``ModelOutput``: attribute, key and tuple access)."""

    loss: torch.Tensor | None = None  # scalar training loss when labels were given
    logits: torch.Tensor | None = None  # [B, C], each example's logits at its exit under the chosen setting
    layer_logits: torch.Tensor | None = None  # [H, B, C]; H = L for head "pabee", 1 for head "full" (layer L)
    exit_layers: torch.Tensor | None = None  # [B] long, 1..L, each example's exit layer under the setting


class PabeeModel(LayerStepping, PreTrainedModel):
    """Encoder + internal classifiers. Build with :meth:`from_backbone` / :meth:`from_backbone_config`,
    load with :meth:`from_pretrained` (or ``AutoModelForSequenceClassification.from_pretrained``)."""

    config_class = PabeeConfig
    base_model_prefix = "backbone"

    def __init__(self, config: PabeeConfig, backbone: nn.Module | None = None) -> None:
        super().__init__(config)
        if backbone is None:
            backbone = AutoModel.from_config(config.backbone_config(),
                                             attn_implementation=config.backbone_attn_implementation)
        self.backbone = backbone
        self._adapter = get_adapter(backbone)
        if self._adapter.num_layers != config.num_layers:
            raise ValueError(f"config says {config.num_layers} layers, backbone has {self._adapter.num_layers}")
        if config.own_pooler == self._adapter.has_pooler:
            raise ValueError(f"own_pooler={config.own_pooler} but backbone has_pooler={self._adapter.has_pooler}")
        hidden = int(backbone.config.hidden_size)
        std = float(getattr(backbone.config, "initializer_range", 0.02))
        self.pooler = (nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
                       if config.own_pooler and not config.pooler_per_layer else None)
        # one dense+tanh pooler per internal classifier (DeeBERT's highways); the backbone's own pooler goes
        self.poolers = None
        if config.pooler_per_layer:
            self.poolers = nn.ModuleList(nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
                                         for _ in range(self.num_heads))
            if self._adapter.has_pooler:
                backbone.pooler = None
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifiers = nn.ModuleList(nn.Linear(hidden, config.num_labels) for _ in range(self.num_heads))
        self._init_std = std
        self.post_init()  # initialises the new pooler and classifiers (the backbone keeps its weights)

    def _init_weights(self, module: nn.Module) -> None:
        """The new linears (pooler, classifiers): normal(0, the backbone's initializer_range), zero bias.
        The backbone is a ``PreTrainedModel`` of its own: transformers initialises it with its own rule."""
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self._init_std)
            nn.init.zeros_(module.bias)

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_backbone(
        cls,
        backbone_name_or_path: str | Path,
        head: str,
        num_labels: int,
        label_names: list[str] | None = None,
        attn_implementation: str | None = None,
        pooling: str = "cls",
    ) -> PabeeModel:
        """Pretrained backbone weights (``AutoModel.from_pretrained``; offline for local dirs), new heads.
        ``attn_implementation`` None lets transformers choose ("sdpa" where supported, else "eager")."""
        source = str(backbone_name_or_path)
        backbone = AutoModel.from_pretrained(source, attn_implementation=attn_implementation, trust_remote_code=False)
        return cls._with_backbone(backbone, head, num_labels, label_names, source, pooling)

    @classmethod
    def from_backbone_config(
        cls,
        config: PretrainedConfig,
        head: str,
        num_labels: int,
        label_names: list[str] | None = None,
        attn_implementation: str | None = None,
        pooling: str = "cls",
    ) -> PabeeModel:
        """A randomly initialised model (seed torch beforehand for reproducibility)."""
        backbone = AutoModel.from_config(copy.deepcopy(config), attn_implementation=attn_implementation)
        return cls._with_backbone(backbone, head, num_labels, label_names, None, pooling)

    @classmethod
    def _with_backbone(cls, backbone, head, num_labels, label_names, source, pooling="cls") -> PabeeModel:
        if label_names is None:
            label_names = [f"LABEL_{i}" for i in range(num_labels)] if isinstance(num_labels, int) else []
        adapter = get_adapter(backbone)
        config = PabeeConfig(
            backbone=backbone.config.to_dict(),
            head=head,
            num_labels=num_labels,
            label_names=list(label_names),
            num_layers=adapter.num_layers,
            classifier_dropout=default_dropout(backbone.config),
            own_pooler=not adapter.has_pooler,
            backbone_attn_implementation=backbone.config._attn_implementation,
            backbone_source=source,
            pooling=pooling,
        )
        return cls(config, backbone)

    # -- attributes -----------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    @property
    def head(self) -> str:
        return self.config.head

    @property
    def label_names(self) -> list[str]:
        return list(self.config.label_names)

    @property
    def num_heads(self) -> int:
        """H, the number of internal classifiers: L for "pabee", 1 for "full"."""
        return self.config.num_layers if self.config.head == "pabee" else 1

    # -- training forward -----------------------------------------------------------------------------
    def _classify(self, k: int, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` of classifier ``k`` (0-based) on a layer's hidden states ``[B, T, H]``: its pooler
        (``poolers[k]`` with ``config.pooler_per_layer``, else the shared one), dropout, ``classifiers[k]``.
        The training forward and the layer stepping (:mod:`robustness.models.stepping`) both classify here."""
        if self.config.pooling == "mean":  # the masked mean stands in for the first token
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            hidden = ((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)).unsqueeze(1)
        if self.poolers is not None:
            pooled = self.poolers[k](hidden[:, 0])
        elif self.pooler is not None:
            pooled = self.pooler(hidden[:, 0])
        else:
            pooled = self._adapter.pool(hidden)
        return self.classifiers[k](self.dropout(pooled))

    def _backbone_kwargs(self, input_ids, attention_mask, token_type_ids) -> dict[str, torch.Tensor]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:  # all zeros are dropped for a backbone without token types (a BERT tokenizer)
            if not self._adapter.has_token_types:
                if bool(token_type_ids.ne(0).any()):
                    raise ValueError(f"{self.backbone.config.model_type} has no token type embeddings; got "
                                     "non-zero token_type_ids")
            else:
                kwargs["token_type_ids"] = token_type_ids
        return kwargs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        setting: Any = None,
        **kwargs: Any,
    ) -> PabeeOutput:
        """All classifiers in one backbone pass; loss ``Σ_i i·CE_i / Σ_i i`` over the H heads (H=1: CE_L).
        ``logits`` and ``exit_layers`` follow ``setting`` (a :class:`~robustness.models.exits.Setting` or its
        label; default: ``config.exit_setting``), derived from the
        all-layer logits exactly as :meth:`exit_from_layer_logits` does. Other keyword arguments
        (``return_dict``, ...) that callers of Hugging Face models pass are accepted and ignored."""
        kwargs = self._backbone_kwargs(input_ids, attention_mask, token_type_ids)
        pabee = self.head == "pabee"
        out = self.backbone(**kwargs, output_hidden_states=pabee, return_dict=True)
        states = out.hidden_states[1:] if pabee else (out.last_hidden_state,)
        mask = kwargs["attention_mask"]
        layer_logits = torch.stack([self._classify(k, h, mask) for k, h in enumerate(states)])
        loss = None
        if labels is not None:
            ce = torch.stack([F.cross_entropy(logits, labels) for logits in layer_logits])
            weights = torch.arange(1, len(ce) + 1, dtype=ce.dtype, device=ce.device)
            loss = (weights * ce).sum() / weights.sum()
        exit_layers, logits = self.exit_from_layer_logits(  # logits gathered from layer_logits, with their graph
            layer_logits, self.config.exit_setting if setting is None else setting)
        return PabeeOutput(loss=loss, logits=logits, layer_logits=layer_logits, exit_layers=exit_layers)

    # -- inference ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode (dropout off) and no grad; restores the previous train/eval mode afterwards.
        (``no_grad`` rather than ``inference_mode`` so callers may modify the returned tensors in place.)"""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            if was_training:
                self.train()

    def all_layer_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[H, B, C]`` logits of every internal classifier, in eval mode without grad."""
        with self._inference():
            return self.forward(input_ids, attention_mask, token_type_ids).layer_logits

    def exit_from_layer_logits(
        self, layer_logits: torch.Tensor, setting: Setting | int | str | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(exit_layer [B], logits [B, C])`` from :meth:`all_layer_logits`' output at an exit ``setting``
        (a :class:`~robustness.models.exits.Setting`, or a patience: int, None = full depth). "pabee": the
        per-example exit rule; "full": every example exits at L with the single head's logits."""
        setting = parse_setting(setting)
        if layer_logits.dim() != 3 or layer_logits.shape[0] != self.num_heads:
            raise ValueError(f"layer_logits must be [{self.num_heads}, B, C], got {tuple(layer_logits.shape)}")
        if self.head == "pabee":
            return setting_exit(layer_logits, setting)
        batch = layer_logits.shape[1]
        exit_layer = torch.full((batch,), self.num_layers, dtype=torch.long, device=layer_logits.device)
        return exit_layer, layer_logits[-1]

    # -- persistence (transformers' save_pretrained, plus the fingerprint) ---------------------------------
    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> None:
        """transformers' ``save_pretrained`` (config.json, model.safetensors), then ``fingerprint.json``. To
        make a whole model directory appear at once, save into :func:`~robustness.provenance.atomic_directory`."""
        super().save_pretrained(save_directory, *args, **kwargs)
        write_fingerprint(save_directory)

    @classmethod
    def from_pretrained(cls, path: str | Path, *args: Any, **kwargs: Any) -> PabeeModel:
        """Load a model saved by ``save_pretrained`` (or by versions before the model was a PreTrainedModel),
        in eval mode. A local directory that holds no whole PABEE model (missing, half-saved, foreign config,
        corrupt weights) is a one-line ``ValueError`` naming it."""
        folder = Path(path)
        if not (folder.is_dir() or PARTIAL_DIR.match(folder.name)):
            return super().from_pretrained(path, *args, **kwargs).eval()
        check_model_dir(folder)
        values = read_json_object(folder / CONFIG_NAME)
        if values.get("model_type") != PabeeConfig.model_type and values.get("format") != LEGACY_FORMAT:
            raise ValueError(f"{path} is not a saved PABEE model (its config.json has model_type "
                             f"{values.get('model_type')!r}, format {values.get('format')!r})")
        try:
            return super().from_pretrained(path, *args, **kwargs).eval()
        except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            message = " ".join(str(exc).split())[:300]
            raise ValueError(f"{path}: cannot load the model: {message}") from None


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``path``; never runs code from the directory (``trust_remote_code=False``)."""
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise ValueError(f"{path}: cannot load the tokenizer: {message}") from None


def load_model_and_tokenizer(path: str | Path) -> tuple[PabeeModel, PreTrainedTokenizerBase]:
    """The model (eval mode, CPU) and the tokenizer saved beside it in ``path``."""
    model = PabeeModel.from_pretrained(path)
    return model, load_tokenizer(path)
