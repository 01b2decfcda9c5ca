"""TextAttack model wrapper for PABEE models: per-example exits, dynamic padding, an all-layer cache.

:class:`PabeeModelWrapper` answers TextAttack's queries with the softmax of each example's *exit*
layer, ``p = softmax(z_e)`` where ``e`` is the example's own PABEE exit layer (never a per-batch
decision). By default every uncached text gets one all-layer pass, whose ``[H, C]`` logits go into a
:class:`LayerLogitsCache`; the exit is derived from them with
``model.exit_from_layer_logits`` for any exit setting (patience, entropy, maxprob, full). Wrappers of the
*same model* at several settings share one cache, so a text is encoded once however many are attacked.

Accounting (what the records report) is independent of that cache, so that a record does not depend on
which runs happened to share it or on where a run was resumed:

* ``num_forward_passes`` -- distinct texts queried since :meth:`PabeeModelWrapper.start_example`, i.e. the
  texts a standalone model would have encoded for the example;
* ``layers_computed`` -- the *deployed* cost: Σ over those texts of each text's exit layer at the wrapper's
  setting, i.e. what a per-example early-exit model would have run to answer them (L per text at full
  depth or for a baseline);
* ``layers_encoded`` -- what this wrapper's inference mode costs for those texts: ``L`` per text for an
  all-layer pass (whatever the setting), the real exit layer per text with ``true_early_exit=True``
  (``model.early_exit``, the latency path), plus ``L`` per :meth:`get_grad` call;
* ``num_encoded`` (texts), ``tokens_encoded`` (their tokens, padding excluded) and the cache's
  ``hits``/``misses`` -- what this process really encoded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from robustness.models.settings import Setting, parse_setting
from robustness.resources.textattack_compat import import_textattack

ModelWrapper = import_textattack().models.wrappers.ModelWrapper

Text = str | tuple[str, str]


def text_key(text: Any) -> Text:
    """A hashable key: a string, or a ``(first, second)`` tuple for sentence pairs (lists become tuples)."""
    if isinstance(text, str):
        return text
    if isinstance(text, (tuple, list)) and len(text) == 2 and all(isinstance(t, str) for t in text):
        return (text[0], text[1])
    raise ValueError(f"a text must be a string or a pair of strings, got {type(text).__name__}: {text!r:.80}")


class LayerLogitsCache:
    """All-layer logits ``[H, C]`` (float32, cpu) of ONE model, keyed by text; optionally LRU-bounded."""

    def __init__(self, max_size: int | None = None) -> None:
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be >= 1 or None, got {max_size}")
        self.max_size = max_size
        self._store: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._owner: int | None = None
        self.hits = 0
        self.misses = 0

    def bind(self, model: Any) -> None:
        """Tie the cache to ``model``; a cache already holding another model's logits is a ValueError."""
        if self._owner is None:
            self._owner = id(model)
        elif self._owner != id(model):
            raise ValueError("this LayerLogitsCache holds another model's logits; use one cache per model")

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._store

    def get(self, key: Hashable) -> np.ndarray | None:
        """The cached logits (counted as a hit) or None (counted as a miss)."""
        value = self._store.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._store.move_to_end(key)
        return value

    def put(self, key: Hashable, logits: np.ndarray) -> None:
        self._store[key] = logits
        self._store.move_to_end(key)
        if self.max_size is not None:
            while len(self._store) > self.max_size:
                self._store.popitem(last=False)

    def stats(self) -> dict[str, int | None]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self._store), "max_size": self.max_size}


class PabeeModelWrapper(ModelWrapper):
    """TextAttack wrapper: ``wrapper(texts) -> probabilities [N, C]`` of each text's exit layer.

    ``setting`` is any form :func:`~robustness.models.settings.parse_setting` reads (an int is a patience,
    None full depth). Sentence pairs arrive from TextAttack as tuples of two strings
    (``AttackedText.tokenizer_input``) and are tokenised as pairs.
    """

    def __init__(
        self, model: Any, tokenizer: Any, setting: Setting | int | str | None, batch_size: int = 32,
        max_length: int = 128, cache: LayerLogitsCache | None = None, true_early_exit: bool = False,
    ) -> None:
        setting = parse_setting(setting)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        if true_early_exit and cache is not None:
            raise ValueError("true_early_exit computes every text for real; it takes no cache")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.setting = setting
        self.batch_size = batch_size
        self.max_length = max_length
        self.true_early_exit = true_early_exit
        self.cache = cache if cache is not None else LayerLogitsCache()
        self.cache.bind(model)
        self.num_layers = int(model.num_layers)
        self.num_forward_passes = 0
        self.layers_computed = 0  # deployed: Σ exit layers of the distinct texts queried
        self.layers_encoded = 0  # this inference mode's cost for them
        self.num_encoded = 0
        self.tokens_encoded = 0  # real tokens (padding excluded) of the texts this wrapper encoded
        self._seen: set[Hashable] = set()
        self._exits: dict[Hashable, tuple[int, np.ndarray]] = {}  # true-early-exit answers of this example

    # ----------------------------------------------------------------------------------------- accounting
    def start_example(self) -> None:
        """Begin a new accounting scope: texts queried from now on count again."""
        self._seen.clear()
        self._exits.clear()

    def counters(self) -> dict[str, int]:
        """Snapshot of the cumulative counters (diff two snapshots for one example's cost)."""
        return {"num_forward_passes": self.num_forward_passes, "layers_computed": self.layers_computed,
                "layers_encoded": self.layers_encoded, "num_encoded": self.num_encoded}

    # ------------------------------------------------------------------------------------------ encoding
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _batches(self, keys: Sequence[Text]):
        """Yield ``(positions, tensors)``: texts sorted by token length, each batch padded to its longest."""
        if len({isinstance(k, tuple) for k in keys}) > 1:
            raise ValueError("a batch mixes single texts and sentence pairs")
        if isinstance(keys[0], tuple):
            enc = self.tokenizer([k[0] for k in keys], [k[1] for k in keys], truncation=True,
                                 max_length=self.max_length)
        else:
            enc = self.tokenizer(list(keys), truncation=True, max_length=self.max_length)
        names = [n for n in ("input_ids", "token_type_ids") if n in enc]
        pad_values = {"input_ids": self.tokenizer.pad_token_id or 0, "token_type_ids": 0}
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        lengths = [len(ids) for ids in enc["input_ids"]]
        order = sorted(range(len(keys)), key=lambda i: lengths[i])
        device = self._device()
        for start in range(0, len(order), self.batch_size):
            positions = order[start : start + self.batch_size]
            width = max(lengths[i] for i in positions)
            batch = {name: torch.full((len(positions), width), pad_values[name], dtype=torch.long) for name in names}
            batch["attention_mask"] = torch.zeros((len(positions), width), dtype=torch.long)
            for j, i in enumerate(positions):
                cols = slice(width - lengths[i], width) if left else slice(0, lengths[i])
                for name in names:
                    batch[name][j, cols] = torch.tensor(enc[name][i], dtype=torch.long)
                batch["attention_mask"][j, cols] = 1
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            yield positions, batch

    def _encode_all_layers(self, keys: Sequence[Text]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(keys)
        with torch.inference_mode():
            for positions, batch in self._batches(keys):
                self.tokens_encoded += int(batch["attention_mask"].sum())
                logits = self.model.all_layer_logits(**batch).float().cpu().numpy()  # [H, B, C]
                for j, i in enumerate(positions):
                    out[i] = np.ascontiguousarray(logits[:, j])
        self.num_encoded += len(keys)
        return out  # type: ignore[return-value]

    def layer_logits(self, texts: Sequence[Any]) -> np.ndarray:
        """All-layer logits ``[H, N, C]`` of ``texts`` from the cache, encoding (once) what is missing."""
        keys = [text_key(t) for t in texts]
        found = {k: self.cache.get(k) for k in dict.fromkeys(keys)}
        missing = [k for k, v in found.items() if v is None]
        if missing:
            for key, logits in zip(missing, self._encode_all_layers(missing), strict=True):
                self.cache.put(key, logits)
                found[key] = logits
        return np.stack([found[k] for k in keys], axis=1)

    def _count(self, keys: Sequence[Text], exit_layers: Sequence[int]) -> None:
        """Count the texts not yet queried in this example: deployed cost = their exit layer; encoded cost =
        the exit layer with true early exit, else L (an all-layer pass)."""
        for key, exit_layer in zip(keys, exit_layers, strict=True):
            if self._first_query(key, int(exit_layer)):
                self.layers_encoded += int(exit_layer) if self.true_early_exit else self.num_layers

    def _first_query(self, key: Hashable, exit_layer: int) -> bool:
        """Count ``key`` as queried for this example (deployed cost: its exit layer) unless it already was."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self.num_forward_passes += 1
        self.layers_computed += exit_layer
        return True

    def _true_early_exit(self, keys: list[Text]) -> tuple[np.ndarray, np.ndarray]:
        todo = [k for k in dict.fromkeys(keys) if k not in self._exits]
        if todo:
            with torch.inference_mode():
                for positions, batch in self._batches(todo):
                    self.tokens_encoded += int(batch["attention_mask"].sum())
                    out = self.model.early_exit(**batch, setting=self.setting)
                    probs = out.logits.float().softmax(dim=-1).cpu().numpy()
                    for j, i in enumerate(positions):
                        self._exits[todo[i]] = (int(out.exit_layer[j]), probs[j])
            self.num_encoded += len(todo)
        exit_layers = np.array([self._exits[k][0] for k in keys])
        self._count(keys, exit_layers)
        return exit_layers, np.stack([self._exits[k][1] for k in keys])

    # ------------------------------------------------------------------------------------- TextAttack API
    def exits(self, texts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(exit_layer [N] in 1..L, probabilities [N, C])`` at this wrapper's setting (counted)."""
        keys = [text_key(t) for t in texts]
        if not keys:
            raise ValueError("no texts to score")
        if self.true_early_exit:
            return self._true_early_exit(keys)
        layer_logits = torch.from_numpy(self.layer_logits(keys))
        exit_layer, logits = self.model.exit_from_layer_logits(layer_logits, self.setting)
        self._count(keys, exit_layer.tolist())
        return exit_layer.numpy(), logits.float().softmax(dim=-1).numpy()

    def __call__(self, text_input_list: Sequence[Any], **kwargs: Any) -> np.ndarray:
        return self.exits(text_input_list)[1]

    def layer_info(self, text: Any) -> tuple[int, int, list[int]]:
        """``(exit_layer, pred, layer_preds)`` of one text: its exit and prediction at this setting, and
        the argmax of every internal classifier (layer 1..H)."""
        exit_layer, probs = self.exits([text])
        layer_logits = self.layer_logits([text])  # cached in the all-layer mode; diagnostics otherwise
        return int(exit_layer[0]), int(probs[0].argmax()), [int(p) for p in layer_logits[:, 0].argmax(axis=-1)]

    def get_grad(self, text_input: Any) -> dict[str, Any]:
        """Gradient of the loss at the exit layer w.r.t. the word embeddings of one text, as TextAttack's
        gradient word-importance ranking expects: ``{"ids": [1, T], "gradient": [T, D]}``. The loss is the
        cross-entropy of the exit layer's logits against their own argmax. Unlike TextAttack's
        ``HuggingFaceModelWrapper`` (which calls ``model.train()``, so dropout perturbs the gradient),
        the model stays in eval mode; no padding to ``model_max_length``. Counted as a query of the text (its
        exit layer deployed, once per example) and as one all-layer pass encoded."""
        key = text_key(text_input)
        positions, batch = next(self._batches([key]))
        embeddings = self.model.backbone.get_input_embeddings()
        captured: dict[str, torch.Tensor] = {}

        def keep_output(module: Any, inputs: Any, output: torch.Tensor) -> None:
            output.retain_grad()
            captured["embeddings"] = output

        handle = embeddings.register_forward_hook(keep_output)
        try:
            with torch.enable_grad():
                layer_logits = self.model(**batch).layer_logits
                exit_layer, _ = self.model.exit_from_layer_logits(layer_logits.detach(), self.setting)
                head = exit_layer - 1 if layer_logits.shape[0] == self.num_layers else exit_layer.new_zeros(1)
                logits = layer_logits[head, torch.arange(layer_logits.shape[1])]
                loss = torch.nn.functional.cross_entropy(logits, logits.argmax(dim=-1))
                loss.backward()
        finally:
            handle.remove()
        gradient = captured["embeddings"].grad[0].detach().cpu().numpy()
        self.model.zero_grad(set_to_none=True)
        self.num_encoded += 1
        self.tokens_encoded += int(batch["attention_mask"].sum())
        self._first_query(key, int(exit_layer[0]))
        self.layers_encoded += self.num_layers  # the gradient pass runs every layer
        return {"ids": batch["input_ids"].cpu(), "gradient": gradient}

    def _tokenize(self, inputs: Sequence[Any]) -> list[list[str]]:
        keys = [text_key(t) for t in inputs]
        return [self.tokenizer.convert_ids_to_tokens(self.tokenizer(*k if isinstance(k, tuple) else (k,))["input_ids"])
                for k in keys]
