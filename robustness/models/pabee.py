"""PABEE classifier (Zhou et al. 2020, "BERT Loses Patience") over a Hugging Face encoder.

Layers are numbered 1..L. Internal classifier i reads layer i's pooled state:
``logits_i = W_i · dropout(pool(r_i)) + b_i`` with ``r_i`` the [CLS] state ``h_i[:, 0]`` (``pooling="cls"``,
the paper) or the masked mean of the token states (``pooling="mean"``). ``pool`` is the backbone's own
pooler (dense + tanh) shared by all layers when the backbone has one (BERT, ALBERT, RoBERTa via ``AutoModel``;
as in the reference code), else a new dense + tanh pooler shared across layers (DistilBERT).

* ``head="pabee"``: one classifier per layer, loss ``Σ_i i·CE_i / Σ_i i`` (the reference weighting).
* ``head="full"``: the baseline, one classifier on layer L, loss ``CE_L``.

Two inference modes agree exactly (tests check it): :meth:`PabeeModel.all_layer_logits` followed by
:meth:`PabeeModel.exit_from_layer_logits` (one pass, any patience derived afterwards), and
:meth:`PabeeModel.early_exit`, which steps the backbone layer by layer and drops exited examples from
the working batch. Exits are decided per example (:func:`robustness.models.exits.patience_exit`).

On disk a model is ``config.json`` (a :class:`~robustness.models.config.PabeeConfig`, which embeds the
backbone config so the backbone is rebuilt without the hub), ``model.safetensors`` and ``fingerprint.json``
(:mod:`robustness.models.fingerprint`); the caller saves the tokenizer beside. Loading never runs code from
the directory (``trust_remote_code=False``) and never unpickles (safetensors only).
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from robustness.models.backbones import get_adapter
from robustness.models.config import HEADS, PabeeConfig, default_dropout
from robustness.models.exits import _check_patience, patience_exit
from robustness.models.fingerprint import write_fingerprint
from robustness.provenance import PARTIAL_DIR, write_json_atomic

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

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class PabeeOutput:
    loss: torch.Tensor | None  # scalar training loss when labels were given
    layer_logits: torch.Tensor  # [H, B, C]; H = L for head "pabee", 1 for head "full" (layer L)


@dataclass
class EarlyExitOutput:
    exit_layer: torch.Tensor  # [B] long, 1..L
    logits: torch.Tensor  # [B, C], the exit layer's logits
    layer_preds: torch.Tensor  # [B, L] long, argmax of each computed internal classifier, -1 where not computed
    layers_computed: int  # Σ over examples of transformer layers actually run


class PabeeModel(nn.Module):
    """Encoder + internal classifiers. Build with :meth:`from_backbone` / :meth:`from_backbone_config`,
    load with :meth:`from_pretrained`."""

    def __init__(self, config: PabeeConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        if backbone is None:
            backbone = AutoModel.from_config(config.backbone_config(), attn_implementation=config.attn_implementation)
        self.config = config
        self.backbone = backbone
        self._adapter = get_adapter(backbone)
        if self._adapter.num_layers != config.num_layers:
            raise ValueError(f"config says {config.num_layers} layers, backbone has {self._adapter.num_layers}")
        if config.own_pooler == self._adapter.has_pooler:
            raise ValueError(f"own_pooler={config.own_pooler} but backbone has_pooler={self._adapter.has_pooler}")
        hidden = int(backbone.config.hidden_size)
        std = float(getattr(backbone.config, "initializer_range", 0.02))
        self.pooler = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh()) if config.own_pooler else None
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifiers = nn.ModuleList(nn.Linear(hidden, config.num_labels) for _ in range(self.num_heads))
        new_linears = [self.pooler[0]] if self.pooler is not None else []
        for linear in [*new_linears, *self.classifiers]:
            nn.init.normal_(linear.weight, std=std)
            nn.init.zeros_(linear.bias)

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
            attn_implementation=backbone.config._attn_implementation,
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
        """Logits ``[B, C]`` of classifier ``k`` (0-based) on a layer's hidden states ``[B, T, H]``."""
        if self.config.pooling == "mean":  # the masked mean stands in for the first token
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            hidden = ((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)).unsqueeze(1)
        pooled = self.pooler(hidden[:, 0]) if self.pooler is not None else self._adapter.pool(hidden)
        return self.classifiers[k](self.dropout(pooled))

    def _backbone_kwargs(self, input_ids, attention_mask, token_type_ids) -> dict[str, torch.Tensor]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            if self.backbone.config.model_type == "distilbert":
                if bool(token_type_ids.ne(0).any()):
                    raise ValueError("DistilBERT has no token type embeddings; got non-zero token_type_ids")
            else:
                kwargs["token_type_ids"] = token_type_ids
        return kwargs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> PabeeOutput:
        """All classifiers in one backbone pass; loss ``Σ_i i·CE_i / Σ_i i`` over the H heads (H=1: CE_L)."""
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
        return PabeeOutput(loss=loss, layer_logits=layer_logits)

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
        self, layer_logits: torch.Tensor, patience: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(exit_layer [B], logits [B, C])`` from :meth:`all_layer_logits`' output. "pabee": the per-example
        patience rule; "full": every example exits at L with the single head's logits."""
        _check_patience(patience)
        if layer_logits.dim() != 3 or layer_logits.shape[0] != self.num_heads:
            raise ValueError(f"layer_logits must be [{self.num_heads}, B, C], got {tuple(layer_logits.shape)}")
        if self.head == "pabee":
            return patience_exit(layer_logits, patience)
        batch = layer_logits.shape[1]
        exit_layer = torch.full((batch,), self.num_layers, dtype=torch.long, device=layer_logits.device)
        return exit_layer, layer_logits[-1]

    def early_exit(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        patience: int | None = None,
    ) -> EarlyExitOutput:
        """True early exit: runs layer i only for the examples still in the working batch. After each layer
        the exited examples are removed (hidden states and mask), and trailing columns that are padding
        for every remaining example are cut. Same exits and logits as the all-layer path."""
        _check_patience(patience)
        kwargs = self._backbone_kwargs(input_ids, attention_mask, token_type_ids)
        mask = kwargs["attention_mask"]
        batch, num_layers, device = input_ids.shape[0], self.num_layers, input_ids.device
        exit_layer = torch.full((batch,), num_layers, dtype=torch.long, device=device)
        layer_preds = torch.full((batch, num_layers), -1, dtype=torch.long, device=device)
        if self.head == "full":
            logits = self.all_layer_logits(input_ids, attention_mask, token_type_ids)[-1]
            layer_preds[:, -1] = logits.argmax(dim=-1)
            return EarlyExitOutput(exit_layer, logits, layer_preds, batch * num_layers)
        stop_at = patience if patience is not None and patience < num_layers else None
        with self._inference():
            hidden = self._adapter.embed(input_ids, kwargs.get("token_type_ids"))
            out_logits = torch.empty(batch, self.num_labels, dtype=hidden.dtype, device=device)
            active = torch.arange(batch, device=device)
            counter = torch.zeros(batch, dtype=torch.long, device=device)
            prev_pred = None
            layers_computed = 0
            for i in range(num_layers):
                keep_cols = int(mask.any(dim=0).nonzero().max()) + 1 if bool(mask.any()) else 1
                hidden, mask = hidden[:, :keep_cols], mask[:, :keep_cols]
                hidden = self._adapter.layer(i, hidden, self._adapter.extended_mask(mask, hidden.dtype))
                layers_computed += int(active.numel())
                logits = self._classify(i, hidden, mask)
                pred = logits.argmax(dim=-1)
                layer_preds[active, i] = pred
                if prev_pred is not None:
                    counter = torch.where(pred == prev_pred, counter + 1, torch.zeros_like(counter))
                done = counter == stop_at if stop_at is not None else torch.zeros_like(pred, dtype=torch.bool)
                if i == num_layers - 1:
                    done = torch.ones_like(done)
                exit_layer[active[done]] = i + 1
                out_logits[active[done]] = logits[done]
                live = ~done
                if not bool(live.any()):
                    break
                active, hidden, mask = active[live], hidden[live], mask[live]
                counter, prev_pred = counter[live], pred[live]
        return EarlyExitOutput(exit_layer, out_logits, layer_preds, layers_computed)

    def reference_batch_early_exit(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        patience: int | None = None,
    ) -> EarlyExitOutput:
        """The PABEE reference code's batch-coupled early exit, for benchmarks only: one counter for the
        whole batch (incremented when *all* predictions stay the same, else reset); the whole batch stops
        at the first layer where it reaches ``patience``. Equals
        :func:`robustness.models.exits.reference_batch_patience_exit` on the all-layer logits."""
        _check_patience(patience)
        if self.head != "pabee":
            raise ValueError("reference_batch_early_exit needs a PABEE head")
        kwargs = self._backbone_kwargs(input_ids, attention_mask, token_type_ids)
        mask = kwargs["attention_mask"]
        batch, num_layers = input_ids.shape[0], self.num_layers
        layer_preds = torch.full((batch, num_layers), -1, dtype=torch.long, device=input_ids.device)
        with self._inference():
            hidden = self._adapter.embed(input_ids, kwargs.get("token_type_ids"))
            extended = self._adapter.extended_mask(mask, hidden.dtype)
            counter, prev_pred = 0, None
            for i in range(num_layers):
                hidden = self._adapter.layer(i, hidden, extended)
                logits = self._classify(i, hidden, mask)
                pred = logits.argmax(dim=-1)
                layer_preds[:, i] = pred
                if prev_pred is not None:
                    counter = counter + 1 if bool((pred == prev_pred).all()) else 0
                prev_pred = pred
                if counter == patience:
                    break
        exit_layer = torch.full((batch,), i + 1, dtype=torch.long, device=input_ids.device)
        return EarlyExitOutput(exit_layer, logits, layer_preds, batch * (i + 1))

    # -- persistence ----------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json``, ``model.safetensors`` and ``fingerprint.json`` into ``path`` (created if
        missing). To make a whole model directory appear at once, save into :func:`atomic_directory`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path / CONFIG_NAME, self.config.to_dict())
        save_model(self, str(path / WEIGHTS_NAME), metadata={"format": "pt"}, force_contiguous=True)
        write_fingerprint(path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> PabeeModel:
        """Load a model saved by :meth:`save_pretrained` (returned in eval mode); ``ValueError`` naming the
        file for a missing, half-saved or corrupt model."""
        path = Path(path)
        check_model_dir(path)
        config_path = path / CONFIG_NAME
        try:
            values = json.loads(config_path.read_text(encoding="utf-8"))
            if not isinstance(values, dict):
                raise ValueError(f"it holds a JSON {type(values).__name__}, not an object")
            config = PabeeConfig.from_dict(values)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{config_path}: not a robustness model config: {exc}") from None
        try:
            model = cls(config)
            load_model(model, str(path / WEIGHTS_NAME), strict=True, device=str(device))
        except (SafetensorError, RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
            message = " ".join(str(exc).split())[:300]
            raise ValueError(f"{path / WEIGHTS_NAME}: cannot load the weights: {message}") from None
        return model.to(device).eval()


def check_model_dir(path: str | Path) -> Path:
    """``path`` holds a whole saved model: ``ValueError`` naming a missing or half-saved one."""
    path = Path(path)
    if PARTIAL_DIR.match(path.name):
        raise ValueError(f"{path} is a half-saved model left by an interrupted save; train it again")
    if not path.is_dir():
        raise ValueError(f"no model at {path} (not a directory)")
    has_config, has_weights = (path / CONFIG_NAME).is_file(), (path / WEIGHTS_NAME).is_file()
    if not has_config and not has_weights:
        raise ValueError(f"no model at {path} (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    if not has_config or not has_weights:
        missing = WEIGHTS_NAME if has_config else CONFIG_NAME
        raise ValueError(f"{path} is a half-saved model ({missing} missing); train it again with --overwrite")
    return path


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
