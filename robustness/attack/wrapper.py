"""TextAttack model wrapper for PABEE models: per-example exits, dynamic padding, a lazily filled layer cache.

:class:`PabeeModelWrapper` answers TextAttack's queries with the softmax of each example's *exit*
layer, ``p = softmax(z_e)`` where ``e`` is the example's own exit layer at the wrapper's setting (never a
per-batch decision). By default a text is encoded layer by layer only until its exit is decided
(:func:`robustness.attack.encoding.advance`); the logits of the layers run, and the hidden state to resume
from, go into a :class:`~robustness.attack.layer_cache.LayerLogitsCache`. Wrappers of the *same model* at
several settings share one cache, so a text is encoded once, as deep as the deepest of them needs, however
many are attacked. A full-depth baseline (one head) gets one all-layer pass per text.

Accounting (what the records report) is independent of that cache, so that a record does not depend on
which runs happened to share it or on where a run was resumed:

* ``num_forward_passes`` -- distinct texts queried since :meth:`PabeeModelWrapper.start_example`, i.e. the
  texts a standalone model would have encoded for the example;
* ``layers_computed`` -- the *deployed* cost: Σ over those texts of each text's exit layer at the wrapper's
  setting, i.e. what a per-example early-exit model would have run to answer them (L per text at full
  depth or for a baseline);
* ``layers_encoded`` -- what this wrapper's own requests cost when it runs alone: for each text, the
  deepest layer it asked for (its exit layer; L where all layers were asked for, as the slowdown goal's
  score does), plus ``L`` per :meth:`get_grad` call;
* ``num_encoded`` (texts), ``tokens_encoded`` (their tokens, padding excluded), ``token_layers_encoded``
  (Σ real tokens x layers run) and the cache's ``hits``/``misses``/``resumed`` -- what this process really
  encoded.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from robustness.attack.encoding import Text, advance, batches, text_key
from robustness.attack.layer_cache import LayerLogitsCache
from robustness.models.exits import prefix_exit
from robustness.resources.textattack_compat import import_textattack
from robustness.schema.settings import Setting, parse_setting

__all__ = ["LayerLogitsCache", "PabeeModelWrapper", "Text", "text_key"]

ModelWrapper = import_textattack().models.wrappers.ModelWrapper
FULL = parse_setting("full")


class PabeeModelWrapper(ModelWrapper):
    """TextAttack wrapper: ``wrapper(texts) -> probabilities [N, C]`` of each text's exit layer.

    ``setting`` is any form :func:`~robustness.schema.settings.parse_setting` reads (an int is a patience,
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
        self.token_layers_encoded = 0  # Σ real tokens x layers this wrapper ran
        self._seen: set[Hashable] = set()
        self._asked: dict[Hashable, int] = {}  # deepest layer asked for, per text of this example
        self._exits: dict[Hashable, tuple[int, np.ndarray]] = {}  # true-early-exit answers of this example

    # ----------------------------------------------------------------------------------------- accounting
    def start_example(self) -> None:
        """Begin a new accounting scope: texts queried from now on count again."""
        self._seen.clear()
        self._asked.clear()
        self._exits.clear()

    def counters(self) -> dict[str, int]:
        """Snapshot of the cumulative counters (diff two snapshots for one example's cost)."""
        return {"num_forward_passes": self.num_forward_passes, "layers_computed": self.layers_computed,
                "layers_encoded": self.layers_encoded, "num_encoded": self.num_encoded}

    # ------------------------------------------------------------------------------------------ encoding
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _batches(self, keys: Sequence[Text]):
        """``(positions, tensors)``: texts sorted by token length, each batch padded to its longest."""
        return batches(self.tokenizer, keys, self.batch_size, self.max_length, self._device())

    def _encode(self, keys: Sequence[Text], setting: Setting) -> None:
        """Make the cache decide ``setting``'s exit for every key (``FULL``: know every layer)."""
        with torch.inference_mode():
            work = advance(self.model, self.tokenizer, self.cache, keys, setting, self.batch_size, self.max_length)
        self.num_encoded += work.texts
        self.tokens_encoded += work.tokens
        self.token_layers_encoded += work.token_layers

    def _known(self, keys: list[Text], count: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached logits of ``keys`` as ``[H, N, C]`` (zeros beyond what is known) and the known depth [N]."""
        heads = self.model.num_heads
        known = np.zeros((heads, len(keys), self.model.num_labels), dtype=np.float32)
        depth = np.zeros(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            logits = self.cache.get(key) if count else self.cache.peek(key)
            if logits is not None:
                known[: len(logits), i], depth[i] = logits, len(logits)
        return torch.from_numpy(known), torch.from_numpy(depth)

    def _exits_at(self, keys: list[Text], setting: Setting) -> tuple[torch.Tensor, torch.Tensor]:
        """``(exit_layer [N], logits [N, C])`` of distinct ``keys`` at ``setting``, encoding what is missing."""
        known, depth = self._known(keys, count=True)
        if self.model.head != "pabee":
            missing = [k for k, d in zip(keys, depth.tolist(), strict=True) if d == 0]
            if missing:
                self._encode(missing, setting)
                known, depth = self._known(keys, count=False)
            return self.model.exit_from_layer_logits(known, setting)
        exit_layer, logits = prefix_exit(known, depth, setting)
        pending = (exit_layer == 0).nonzero().flatten()
        if pending.numel():
            pending_keys = [keys[i] for i in pending.tolist()]
            self._encode(pending_keys, setting)
            exit_layer[pending], logits[pending] = prefix_exit(*self._known(pending_keys, count=False), setting)
        return exit_layer, logits

    def layer_logits(self, texts: Sequence[Any], count: bool = True) -> np.ndarray:
        """All-layer logits ``[H, N, C]`` of ``texts``, encoding (once) what is missing. ``count``: charge
        every layer of these texts to this wrapper's ``layers_encoded`` (a goal that reads them all); False
        for diagnostics."""
        keys = [text_key(t) for t in texts]
        unique = list(dict.fromkeys(keys))
        self._exits_at(unique, FULL)
        if count:
            for key in unique:
                self._ask(key, self.num_layers)
        known, _ = self._known(keys, count=False)
        return known.numpy()

    def _ask(self, key: Hashable, depth: int) -> None:
        """This example asked for ``depth`` layers of ``key``: charge what that adds to ``layers_encoded``."""
        before = self._asked.get(key, 0)
        if depth > before:
            self._asked[key] = depth
            self.layers_encoded += depth - before

    def _count(self, keys: Sequence[Text], exit_layers: Sequence[int]) -> None:
        """Count queried texts at their exit layers: deployed cost once per example, encoded cost to that depth."""
        for key, exit_layer in zip(keys, exit_layers, strict=True):
            self._first_query(key, exit_layer)
            self._ask(key, exit_layer)

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
                    real = batch["attention_mask"].sum(dim=1)
                    self.token_layers_encoded += int((real * out.exit_layer.to(real.device)).sum())
                    probs = out.logits.float().softmax(dim=-1).cpu().numpy()  # one copy per batch
                    exit_layers = out.exit_layer.cpu().tolist()
                    for j, i in enumerate(positions):
                        self._exits[todo[i]] = (exit_layers[j], probs[j])
            self.num_encoded += len(todo)
        exit_layers = np.array([self._exits[k][0] for k in keys])
        self._count(keys, exit_layers.tolist())
        return exit_layers, np.stack([self._exits[k][1] for k in keys])

    # ------------------------------------------------------------------------------------- TextAttack API
    def exits(self, texts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(exit_layer [N] in 1..L, probabilities [N, C])`` at this wrapper's setting (counted)."""
        keys = [text_key(t) for t in texts]
        if not keys:
            raise ValueError("no texts to score")
        if self.true_early_exit:
            return self._true_early_exit(keys)
        unique = list(dict.fromkeys(keys))
        exit_layer, logits = self._exits_at(unique, self.setting)
        self._count(unique, exit_layer.tolist())
        index = {key: i for i, key in enumerate(unique)}
        rows = [index[k] for k in keys]
        return exit_layer.numpy()[rows], logits.float().softmax(dim=-1).numpy()[rows]

    def __call__(self, text_input_list: Sequence[Any], **kwargs: Any) -> np.ndarray:
        return self.exits(text_input_list)[1]

    def layer_info(self, text: Any) -> tuple[int, int, list[int]]:
        """``(exit_layer, pred, layer_preds)`` of one text: its exit and prediction at this setting, and
        the argmax of every internal classifier (layer 1..H)."""
        exit_layer, probs = self.exits([text])
        layer_logits = self.layer_logits([text], count=False)  # diagnostics: the text's every layer
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
                logits = layer_logits[head, torch.arange(layer_logits.shape[1], device=layer_logits.device)]
                loss = torch.nn.functional.cross_entropy(logits, logits.argmax(dim=-1))
                loss.backward()
        finally:
            handle.remove()
        gradient = captured["embeddings"].grad[0].detach().cpu().numpy()
        self.model.zero_grad(set_to_none=True)
        self.num_encoded += 1
        self.tokens_encoded += int(batch["attention_mask"].sum())
        self.token_layers_encoded += int(batch["attention_mask"].sum()) * self.num_layers
        self._first_query(key, int(exit_layer[0]))
        self.layers_encoded += self.num_layers  # the gradient pass runs every layer
        return {"ids": batch["input_ids"].cpu(), "gradient": gradient}

    def _tokenize(self, inputs: Sequence[Any]) -> list[list[str]]:
        keys = [text_key(t) for t in inputs]
        return [self.tokenizer.convert_ids_to_tokens(self.tokenizer(*k if isinstance(k, tuple) else (k,))["input_ids"])
                for k in keys]
