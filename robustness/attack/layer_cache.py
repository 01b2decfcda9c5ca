"""The per-model cache of layer logits, filled lazily: each text is encoded only as deep as a query needs.

An entry holds the logits ``[d, C]`` of a text's first ``d`` internal classifiers and, while ``d < H``, the
hidden state ``[T, D]`` of its real tokens after layer ``d``. A query at some exit setting is answered from
the entry when its ``d`` layers decide the exit (:func:`robustness.models.exits.prefix_exit`); otherwise the
text is resumed from that state, layer by layer, until they do. So a text that every querying setting exits
at layer 3 costs 3 layers, not L, and a deeper setting asking later pays only the layers it adds.

Hidden states are the large part (``T * D`` floats per text), so they live in an LRU bounded in bytes
(``max_state_bytes``). A text whose state was dropped restarts from its embeddings when a deeper layer is
needed: the same layers again, the same logits (counted in ``restarted``).

States stay on the model's device (a GPU's memory, when the model is there): a resumed text then joins its
batch without a host round trip. The byte bound counts them wherever they are, so on a GPU it is the memory
the cache may hold there beside the model (256 MiB by default).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np
import torch

DEFAULT_STATE_BYTES = 256 * 2**20


class LayerLogitsCache:
    """Layer logits (float32 numpy, a prefix ``[d, C]`` of the ``[H, C]``) of ONE model, keyed by text, with
    resumable hidden states; the logits are optionally LRU-bounded in entries (``max_size``), the states
    always in bytes (``max_state_bytes``)."""

    def __init__(self, max_size: int | None = None, max_state_bytes: int = DEFAULT_STATE_BYTES) -> None:
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be >= 1 or None, got {max_size}")
        if max_state_bytes < 0:
            raise ValueError(f"max_state_bytes must be >= 0, got {max_state_bytes}")
        self.max_size = max_size
        self.max_state_bytes = max_state_bytes
        self._logits: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._states: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._state_bytes = 0
        self._owner: int | None = None
        self.hits = 0  # lookups that found the text (at any depth)
        self.misses = 0  # lookups that did not
        self.resumed = 0  # texts continued from a stored state
        self.restarted = 0  # texts re-encoded from their embeddings because their state had been dropped

    def bind(self, model: Any) -> None:
        """Tie the cache to ``model``; a cache already holding another model's logits is a ValueError."""
        if self._owner is None:
            self._owner = id(model)
        elif self._owner != id(model):
            raise ValueError("this LayerLogitsCache holds another model's logits; use one cache per model")

    def __len__(self) -> int:
        return len(self._logits)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._logits

    def get(self, key: Hashable) -> np.ndarray | None:
        """The known logits ``[d, C]`` (counted as a hit) or None (counted as a miss)."""
        value = self._logits.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._logits.move_to_end(key)
        return value

    def peek(self, key: Hashable) -> np.ndarray | None:
        """The known logits, or None; neither counted nor moved in the LRU order."""
        return self._logits.get(key)

    def state(self, key: Hashable) -> torch.Tensor | None:
        """The hidden state ``[T, D]`` after the last known layer, if still held (not counted)."""
        return self._states.get(key)

    def put(self, key: Hashable, logits: np.ndarray, state: torch.Tensor | None = None) -> None:
        """Store ``logits`` ``[d, C]`` and, for an incomplete text, its state after layer ``d`` (None: the text
        is complete, or its state is not kept)."""
        self._drop_state(key)
        self._logits[key] = logits
        self._logits.move_to_end(key)
        if state is not None and state.numel() * state.element_size() <= self.max_state_bytes:
            self._states[key] = state
            self._state_bytes += state.numel() * state.element_size()
            while self._state_bytes > self.max_state_bytes:
                self._drop_state(next(iter(self._states)))
        if self.max_size is not None:
            while len(self._logits) > self.max_size:
                evicted, _ = self._logits.popitem(last=False)
                self._drop_state(evicted)

    def _drop_state(self, key: Hashable) -> None:
        state = self._states.pop(key, None)
        if state is not None:
            self._state_bytes -= state.numel() * state.element_size()

    def stats(self) -> dict[str, int | None]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self._logits), "max_size": self.max_size,
                "resumed": self.resumed, "restarted": self.restarted, "states": len(self._states),
                "state_bytes": self._state_bytes}
