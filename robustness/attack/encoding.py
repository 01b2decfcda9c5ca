"""Tokenising and encoding the wrapper's texts: dynamic padding, and the lazy layer-by-layer encoder.

:func:`advance` runs each text through the PABEE layers only until its exit at a setting is decided, storing
what it computed in a :class:`~robustness.attack.layer_cache.LayerLogitsCache`: the logits of the layers
run, and the hidden state to resume from. Texts are batched by token length (``batch_size`` per batch,
right-padded to the longest); a text resumed at depth ``d`` joins its batch at layer ``d + 1``, and after
every layer the texts whose exit is decided leave it, and the columns that are padding for every text
still in the batch are cut (as in :meth:`~robustness.models.pabee.PabeeModel.early_exit`). A text's result
does not depend on its batch neighbours beyond float rounding (a test checks the exits and probabilities).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from robustness.attack.layer_cache import LayerLogitsCache
from robustness.models.batching import sorted_batches
from robustness.models.exits import exit_step, patience_counters

Text = str | tuple[str, str]


def text_key(text: Any) -> Text:
    """A hashable key: a string, or a ``(first, second)`` tuple for sentence pairs (lists become tuples)."""
    if isinstance(text, str):
        return text
    if isinstance(text, (tuple, list)) and len(text) == 2 and all(isinstance(t, str) for t in text):
        return (text[0], text[1])
    raise ValueError(f"a text must be a string or a pair of strings, got {type(text).__name__}: {text!r:.80}")


def tokenize(tokenizer: Any, keys: Sequence[Text], max_length: int) -> dict[str, list[list[int]]]:
    """Token ids (and token types, where the tokenizer makes them) of every key, unpadded, truncated."""
    if len({isinstance(k, tuple) for k in keys}) > 1:
        raise ValueError("a batch mixes single texts and sentence pairs")
    if isinstance(keys[0], tuple):
        enc = tokenizer([k[0] for k in keys], [k[1] for k in keys], truncation=True, max_length=max_length)
    else:
        enc = tokenizer(list(keys), truncation=True, max_length=max_length)
    return {n: enc[n] for n in ("input_ids", "token_type_ids") if n in enc}


def pad(tokenizer: Any, enc: dict[str, list[list[int]]], positions: Sequence[int], device: torch.device,
        left: bool = False) -> dict[str, torch.Tensor]:
    """Rows ``positions`` of ``enc`` padded to their longest by ``tokenizer.pad``, with an ``attention_mask``;
    right-padded unless ``left``."""
    # A fast tokenizer advises, once, to pad in its __call__ instead; the texts are tokenised once, unpadded, to
    # sort them by length, and each batch is a subset of them, which only ``pad`` can pad. Advice taken as read.
    tokenizer.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True
    rows = {name: [enc[name][i] for i in positions] for name in enc}
    batch = tokenizer.pad(rows, padding=True, padding_side="left" if left else "right", return_attention_mask=True,
                          return_tensors="pt")
    return {name: batch[name].to(device) for name in (*enc, "attention_mask")}


def batches(tokenizer: Any, keys: Sequence[Text], batch_size: int, max_length: int, device: torch.device
            ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """``(positions, tensors)``: the keys sorted by token length, each batch padded to its longest."""
    enc = tokenize(tokenizer, keys, max_length)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    for positions in sorted_batches([len(ids) for ids in enc["input_ids"]], batch_size):
        yield positions, pad(tokenizer, enc, positions, device, left)


@dataclass
class Work:
    """What :func:`advance` really computed: texts started from their embeddings, their real tokens, and
    Σ real tokens x layers run (the model's work; padding excluded)."""

    texts: int = 0
    tokens: int = 0
    token_layers: int = 0


@dataclass
class _Item:
    key: Hashable
    depth: int  # layers known
    length: int  # real tokens
    logits: Any = None  # numpy [depth, C] when depth > 0
    state: torch.Tensor | None = None  # [length, D] after layer `depth` when resumed
    row: int = -1  # position in the tokenised new texts


def advance(model: Any, tokenizer: Any, cache: LayerLogitsCache, keys: Sequence[Text], setting: Any,
            batch_size: int, max_length: int) -> Work:
    """Encode or resume every key (their stored layers do not decide it yet) until its known layers decide its
    exit at ``setting`` (a :class:`~robustness.schema.settings.Setting`; ``full``: all layers), storing the
    result in ``cache``. A full-depth baseline (one head, on layer L) gets one all-layer pass per text."""
    work, items, new = Work(), [], []
    for key in dict.fromkeys(keys):
        logits, state = cache.peek(key), cache.state(key)
        if logits is not None and state is not None:
            cache.resumed += 1
            items.append(_Item(key, len(logits), state.shape[0], logits, state))
        else:
            cache.restarted += logits is not None
            new.append(key)
    enc = tokenize(tokenizer, new, max_length) if new else {"input_ids": []}
    if new and (model.head != "pabee" or not can_exit_early(setting, model.num_layers)):  # all L layers: one pass
        _all_layers(model, tokenizer, cache, new, enc, batch_size, work)
    else:
        items += [_Item(key, 0, len(enc["input_ids"][row]), row=row) for row, key in enumerate(new)]
    for positions in sorted_batches([item.length for item in items], batch_size):
        _run(model, tokenizer, cache, [items[i] for i in positions], enc, setting, work)
    work.texts = len(new)
    return work


def can_exit_early(setting: Any, num_layers: int) -> bool:
    """Can ``setting`` exit before layer L? (Not at full depth, nor at a patience of L - 1 or more.)"""
    if setting.policy == "patience":
        return setting.value < num_layers - 1
    return setting.policy != "full"


def _all_layers(model: Any, tokenizer: Any, cache: LayerLogitsCache, keys: list[Text], enc: dict,
                batch_size: int, work: Work) -> None:
    """New texts whose every layer is needed: one backbone pass per length-sorted batch (the same logits as
    stepping, a test checks it, with less overhead per layer)."""
    device = next(model.parameters()).device
    for positions in sorted_batches([len(ids) for ids in enc["input_ids"]], batch_size):
        batch = pad(tokenizer, enc, positions, device)
        tokens = int(batch["attention_mask"].sum())
        work.tokens += tokens
        work.token_layers += tokens * model.num_layers
        logits = model.all_layer_logits(**batch).float().cpu().numpy()  # [H, B, C]
        for j, i in enumerate(positions):
            cache.put(keys[i], logits[:, j].copy())


def _run(model: Any, tokenizer: Any, cache: LayerLogitsCache, items: list[_Item], enc: dict, setting: Any,
         work: Work) -> None:
    """One batch: embed the new texts, step layer by layer (resumed texts join at their depth), store."""
    device = next(model.parameters()).device
    num_layers, size = model.num_layers, len(items)
    lengths = torch.tensor([item.length for item in items])
    width = int(lengths.max())
    mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long().to(device)
    new = [j for j, item in enumerate(items) if item.depth == 0]
    hidden = None
    if new:
        batch = pad(tokenizer, enc, [items[j].row for j in new], device)
        embedded = model.embed(**batch)
        work.tokens += int(batch["attention_mask"].sum())
        hidden = embedded.new_zeros(size, width, embedded.shape[-1])
        hidden[new, : embedded.shape[1]] = embedded
    for j, item in enumerate(items):
        if item.depth:
            if hidden is None:
                hidden = torch.zeros(size, width, item.state.shape[-1], dtype=item.state.dtype, device=device)
            hidden[j, : item.length] = item.state.to(device)
    layer_logits = torch.zeros(num_layers, size, model.num_labels)
    depth = torch.tensor([item.depth for item in items])
    for j, item in enumerate(items):
        if item.depth:
            layer_logits[: item.depth, j] = torch.from_numpy(item.logits)
    # the rule's state after each text's known layers: its last prediction and PABEE counter
    preds = layer_logits.argmax(dim=-1)
    last = (depth - 1).clamp(min=0).unsqueeze(0)
    prev_pred = torch.where(depth > 0, preds.gather(0, last)[0], torch.full_like(depth, -1))
    counter = torch.where(depth > 0, patience_counters(preds).gather(0, last)[0], torch.zeros_like(depth))
    done = torch.zeros(size, dtype=torch.bool)
    # depth, done, lengths and the rule's state stay on the host; a layer's one device -> host copy is its logits
    for i in range(int(depth.min()), num_layers):
        active = ((depth == i) & ~done).nonzero().flatten()
        if active.numel() == 0:
            continue
        cols = int(lengths[active].max())
        rows = active.to(device)
        out, logits = model.layer_step(i, hidden[rows, :cols], mask[rows, :cols])
        hidden[rows, :cols] = out
        logits = logits.float().cpu()  # the exit decision needs them
        layer_logits[i, active] = logits
        depth[active] = i + 1
        work.token_layers += int(lengths[active].sum())
        fired, prev_pred[active], counter[active] = exit_step(setting, i + 1, num_layers, logits, prev_pred[active],
                                                              counter[active])
        done[active] = fired
        if bool(done.all()):
            break
    for j, item in enumerate(items):
        d = int(depth[j])
        state = hidden[j, : item.length].clone() if d < num_layers else None
        cache.put(item.key, layer_logits[:d, j].numpy().copy(), state)
