"""Layer-by-layer stepping adapters over Hugging Face encoders (transformers 4.57).

An adapter exposes one backbone as three steps, so that true early exit can run layer ``i`` on a
shrinking batch (layers are numbered 1..L, indices here are 0-based ``i - 1``):

* ``embed(input_ids, token_type_ids) -> hidden [B, T, H]`` -- the backbone's embedding output, i.e.
  ``hidden_states[0]`` of ``backbone(..., output_hidden_states=True)`` (ALBERT: after its
  ``embedding_hidden_mapping_in``; ELECTRA: after ``embeddings_project``).
* ``extended_mask(attention_mask, dtype)`` -- the mask each layer expects. For the BERT-like layers it
  is the additive ``(1 - m) * finfo(dtype).min`` of shape ``[B, 1, 1, T]``, which both the ``eager``
  and the ``sdpa`` attention accept (sdpa broadcasts it). DistilBERT's eager attention takes the 0/1
  mask ``[B, T]`` itself.
* ``layer(i, hidden, mask) -> hidden`` -- transformer layer ``i + 1``; ALBERT applies its (shared)
  layer group ``i + 1``-th time, exactly as ``AlbertTransformer`` does.

MPNet has no token type embeddings and adds a relative position bias ``[B, heads, T, T]`` to every layer's
attention scores; its encoder computes that bias once per forward from the batch size and length alone
(``MPNetEncoder.compute_position_bias``). Its ``extended_mask`` therefore returns the pair (additive mask,
position bias), computed once for the working batch's shape and passed to every layer stepped on it.
``has_token_types`` says whether the backbone embeds token type ids (``PabeeModel`` never passes them to
one that does not).

``pool(hidden) -> [B, H]`` applies the backbone's own pooler to the [CLS] (first) position when it has
one, and ``has_pooler`` says whether it does.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ADAPTERS", "BackboneAdapter", "get_adapter", "step_hidden_states"]


def _additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[B, T]`` 0/1 mask -> additive ``[B, 1, 1, T]``: 0 where attended, ``finfo(dtype).min`` where padded."""
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


class BackboneAdapter:
    """BERT-family stepping (bert, roberta, xlm-roberta, electra): ``backbone.encoder.layer[i]``."""

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone

    @property
    def num_layers(self) -> int:
        return int(self.backbone.config.num_hidden_layers)

    has_token_types = True

    @property
    def has_pooler(self) -> bool:
        return getattr(self.backbone, "pooler", None) is not None

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """The backbone's pooler (dense + tanh of the first token), on ``[B, T, H]``."""
        return self.backbone.pooler(hidden)

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.backbone.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        project = getattr(self.backbone, "embeddings_project", None)  # ELECTRA with embedding_size != hidden
        return project(hidden) if project is not None else hidden

    def extended_mask(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return _additive_mask(attention_mask, dtype)

    def layer(self, i: int, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.backbone.encoder.layer[i](hidden, attention_mask=mask)[0]


class AlbertAdapter(BackboneAdapter):
    """ALBERT: layer i is the layer group ``int(i / (L / G))`` applied once (weights shared across layers)."""

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.backbone.pooler_activation(self.backbone.pooler(hidden[:, 0]))

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.backbone.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        return self.backbone.encoder.embedding_hidden_mapping_in(hidden)

    def layer_group(self, i: int) -> nn.Module:
        config = self.backbone.config
        group_idx = int(i / (config.num_hidden_layers / config.num_hidden_groups))
        return self.backbone.encoder.albert_layer_groups[group_idx]

    def layer(self, i: int, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        group = self.layer_group(i)
        head_mask = [None] * len(group.albert_layers)
        return group(hidden, mask, head_mask)[0]


class DistilBertAdapter(BackboneAdapter):
    """DistilBERT: ``backbone.transformer.layer[i]``; no token types, no pooler."""

    has_token_types = False

    @property
    def has_pooler(self) -> bool:
        return False

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        raise ValueError("DistilBERT has no pooler")

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone.embeddings(input_ids)

    def extended_mask(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if self.backbone.config._attn_implementation == "eager":
            return attention_mask  # MultiHeadSelfAttention masks where mask == 0
        return _additive_mask(attention_mask, dtype)

    def layer(self, i: int, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.backbone.transformer.layer[i](hidden, mask)[-1]


class MPNetAdapter(BackboneAdapter):
    """MPNet (transformers' ``MPNetModel``): ``backbone.encoder.layer[i]`` with the additive mask and the relative
    position bias; no token types. The embeddings derive position ids from the input ids (padding id 1 keeps
    position 1), so a right-padded row embeds as it would alone; the pooler is BERT's (dense + tanh of the
    first token)."""

    has_token_types = False

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone.embeddings(input_ids=input_ids)

    def extended_mask(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(additive mask [B, 1, 1, T], position bias [B, heads, T, T])``: the bias depends only on B and T,
        and ``compute_position_bias`` reads nothing else from its input, so the mask stands in for the hidden
        states (same shape [B, T, ...]) and the bias is exactly the one ``MPNetEncoder.forward`` computes."""
        bias = self.backbone.encoder.compute_position_bias(attention_mask)
        return _additive_mask(attention_mask, dtype), bias

    def layer(self, i: int, hidden: torch.Tensor, mask: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        additive, bias = mask
        return self.backbone.encoder.layer[i](hidden, additive, None, bias)[0]


ADAPTERS: dict[str, type[BackboneAdapter]] = {
    "bert": BackboneAdapter,
    "roberta": BackboneAdapter,
    "xlm-roberta": BackboneAdapter,
    "electra": BackboneAdapter,
    "albert": AlbertAdapter,
    "distilbert": DistilBertAdapter,
    "mpnet": MPNetAdapter,
}

SUPPORTED_ATTENTION = ("eager", "sdpa")


def get_adapter(backbone: nn.Module) -> BackboneAdapter:
    """The stepping adapter for ``backbone`` (an ``AutoModel``), chosen by ``config.model_type``."""
    model_type = backbone.config.model_type
    if model_type not in ADAPTERS:
        raise ValueError(f"unsupported backbone model_type {model_type!r}; supported: {sorted(ADAPTERS)}")
    attn = backbone.config._attn_implementation
    if attn not in SUPPORTED_ATTENTION:
        raise ValueError(f"unsupported attn_implementation {attn!r}; supported: {list(SUPPORTED_ATTENTION)}")
    if getattr(backbone.config, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported")
    return ADAPTERS[model_type](backbone)


def step_hidden_states(
    adapter: BackboneAdapter,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Hidden states ``[embeddings, layer 1, ..., layer L]`` computed by stepping the adapter on the
    whole batch; equals ``backbone(..., output_hidden_states=True).hidden_states`` (a test checks it)."""
    hidden = adapter.embed(input_ids, token_type_ids)
    mask = adapter.extended_mask(attention_mask, hidden.dtype)
    states = [hidden]
    for i in range(adapter.num_layers):
        hidden = adapter.layer(i, hidden, mask)
        states.append(hidden)
    return states
