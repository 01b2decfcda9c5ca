"""Sentence-encoder thresholds of the recipes, per offline encoder (:func:`calibrated_threshold`).

Quantile mapping (τ_local = Q_local(F_stock(τ_stock))) needs the stock encoder's similarity distribution
F_stock (USE v4 from TF-Hub, SBERT stsb-distilbert-base from the HF hub), which cannot be computed offline.
We therefore keep each recipe's stock threshold, metric and window unchanged on the local encoder's scale,
for both offline encoders, and report where it falls in each encoder's distribution of small edits:

* ``minilm`` (all-MiniLM-L6-v2): a different family from USE; a DAN-style average of raw GloVe vectors (the
  only other USE-like stand-in offline before USE-m3) put every stock threshold below its 2% quantile, which
  would make the constraints vacuous, so no mapping through it was attempted.
* ``use-m3`` (USE multilingual v3): the same family as USE v4 (Google's Universal Sentence Encoder, trained on
  the same kinds of tasks, 512-d unit vectors, compared by angular similarity in TextFooler); it is the
  closest encoder to the one the thresholds were chosen on, so its stock threshold is kept as is. Where it
  rejects a different share of swaps than MiniLM (table below) the two runs are not the same constraint:
  that is why the encoder is part of a run's identity (:class:`robustness.suite.specs.RunSpec`).

Sample: SST-2 validation, ≤ 2 random non-stopword words per sentence swapped with a random one of their 50
counter-fitted neighbours with cosine ≥ 0.5 (TextFooler's candidate set), seed 0, built with
:func:`swap_similarities`; windowed configs use only sentences of ≥ 15 words (shorter ones are skipped by
the recipes). Fraction of these swaps each encoder rejects at the stock threshold
(``python scripts/bench_encoders.py --model M --resources ../shared --n 0 --calibration use-m3``):

=============  ========  ======  ================  ===========  ========  ========
recipe         metric    window  stock threshold   n swaps      MiniLM    USE-m3
=============  ========  ======  ================  ===========  ========  ========
textfooler     angular   15      0.840845057       1058         25.5%     16.0%
bae            cosine    15      0.936338023       1058         50.2%     46.3%
textbugger     angular   text    0.8               1734         16.2%      9.0%
a2t (SBERT)    cosine    text    0.9               1734         36.7%     27.6%
bert-attack    cosine    text    0.2               1734          0.0%      0.0%
=============  ========  ======  ================  ===========  ========  ========

At the stock thresholds USE-m3 is the more lenient of the two (it rates these swaps more similar: median cosine
0.940 on 15-word windows against MiniLM's 0.936, 10% quantile 0.852 against 0.800) but far from vacuous: it still
rejects 16% of TextFooler's candidate swaps. The MiniLM column was measured when MiniLM was the only encoder;
``python scripts/bench_encoders.py --model M --resources ../shared --n 0 --calibration minilm use-m3`` recomputes
both on the same sample (same swap counts): MiniLM's 15-word figures come out identical, its whole-text ones within
0.003 in cosine (textbugger 16.21% rejected, a2t 36.68%), presumably from batching differences in the float sums.

Each encoder's cosine quantiles are stored in :data:`SWAP_COSINE`; ``calibrated_threshold(recipe,
quantile=q, encoder=e)`` returns the threshold that rejects a fraction q of such swaps under encoder e (e.g.
a USE rejection rate measured online), converted to the recipe's metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustness.resources.textattack_compat import import_textattack


def swap_pairs(
    sentences: Sequence[str],
    embedding: Any,
    *,
    window_size: int | None = None,
    per_sentence: int = 2,
    max_candidates: int = 50,
    min_cos_sim: float = 0.5,
    seed: int = 0,
) -> tuple[list[str], list[str]]:
    """(original, single-word swap) texts, as a recipe's constraint compares them.

    For each sentence (with at least ``window_size`` words when windowed: shorter ones are skipped by the
    recipes), up to ``per_sentence`` random non-stopword words in the embedding vocabulary are swapped with a
    random one of their ``max_candidates`` counter-fitted neighbours with cosine ≥ ``min_cos_sim``; windowed,
    both texts are the ``window_size``-word windows around the swapped word.
    """
    import random

    from nltk.corpus import stopwords

    import_textattack()
    from textattack.shared import AttackedText

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
    return originals, swapped


def pair_similarities(originals: Sequence[str], swapped: Sequence[str], encoder: Any,
                      metric: str = "cosine") -> np.ndarray:
    """``metric`` ("cosine" or "angular": 1 − arccos(cos)/π) of each pair under ``encoder`` (``encode(texts)`` ->
    unit rows as a torch tensor, as the encoders of :mod:`robustness.resources.sentence_encoder`)."""
    import torch

    if metric not in ("cosine", "angular"):
        raise ValueError(f"metric must be 'cosine' or 'angular', got {metric!r}")
    if not originals:
        return np.zeros(0, dtype=np.float32)
    cos = (encoder.encode(list(originals)) * encoder.encode(list(swapped))).sum(dim=1).clamp(-1.0, 1.0)
    sims = 1.0 - torch.acos(cos) / np.pi if metric == "angular" else cos
    return sims.numpy().astype(np.float32)


def swap_similarities(sentences: Sequence[str], embedding: Any, encoder: Any, *, metric: str = "cosine",
                      window_size: int | None = None, **swap: Any) -> np.ndarray:
    """Encoder similarity of the :func:`swap_pairs` of ``sentences`` (``swap``: its other keywords)."""
    if metric not in ("cosine", "angular"):
        raise ValueError(f"metric must be 'cosine' or 'angular', got {metric!r}")
    return pair_similarities(*swap_pairs(sentences, embedding, window_size=window_size, **swap), encoder, metric)


QUANTILES = (0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50)
# Cosine of (original, one-word counter-fitted swap) at QUANTILES, per encoder; key = window size (None: text).
SWAP_COSINE: dict[str, dict[int | None, tuple[float, ...]]] = {
    "minilm": {
        15: (0.6514, 0.6793, 0.7523, 0.8000, 0.8325, 0.8561, 0.8761, 0.8925, 0.9167, 0.9360),
        None: (0.5162, 0.5690, 0.6766, 0.7560, 0.7967, 0.8340, 0.8581, 0.8806, 0.9087, 0.9397),
    },
    "use-m3": {
        15: (0.7568, 0.7768, 0.8093, 0.8523, 0.8751, 0.8859, 0.8981, 0.9090, 0.9263, 0.9397),
        None: (0.6229, 0.7160, 0.7645, 0.8225, 0.8544, 0.8781, 0.8945, 0.9057, 0.9272, 0.9422),
    },
}
MINILM_SWAP_COSINE = SWAP_COSINE["minilm"]  # the name this table had when MiniLM was the only encoder


@dataclass(frozen=True)
class Calibration:
    recipe: str
    stock_encoder: str
    metric: str  # "cosine" or "angular" (1 - arccos(cos)/π), as in the stock recipe
    window_size: int | None
    stock_threshold: float
    rejected: float  # fraction of the calibration swaps MiniLM rejects at stock_threshold
    rejected_use_m3: float  # the same for USE-m3


CALIBRATION: dict[str, Calibration] = {
    c.recipe: c
    for c in (
        Calibration("textfooler", "USE", "angular", 15, 0.840845057, 0.2552, 0.1597),
        Calibration("bae", "USE", "cosine", 15, 0.936338023, 0.5019, 0.4631),
        Calibration("textbugger", "USE", "angular", None, 0.8, 0.1615, 0.0900),
        Calibration("a2t", "SBERT stsb-distilbert-base", "cosine", None, 0.9, 0.3668, 0.2762),
        Calibration("bert-attack", "USE", "cosine", None, 0.2, 0.0, 0.0),
    )
}


def calibrated_threshold(recipe_name: str, quantile: float | None = None, encoder: str = "minilm") -> float:
    """Threshold for a recipe's sentence-encoder constraint under ``encoder`` (see the module docstring).

    Default: the stock threshold on the encoder's scale (for every encoder). With ``quantile``: the encoder's
    similarity (in the recipe's metric) below which that fraction of single-word swaps falls (linear
    interpolation).
    """
    if recipe_name not in CALIBRATION:
        raise ValueError(f"unknown recipe {recipe_name!r} for calibration; known: {', '.join(CALIBRATION)}")
    if encoder not in SWAP_COSINE:
        raise ValueError(f"unknown sentence encoder {encoder!r}; known: {', '.join(SWAP_COSINE)}")
    cal = CALIBRATION[recipe_name]
    if quantile is None:
        return cal.stock_threshold
    if not QUANTILES[0] <= quantile <= QUANTILES[-1]:
        raise ValueError(f"quantile must lie in [{QUANTILES[0]}, {QUANTILES[-1]}], got {quantile}")
    cos = float(np.interp(quantile, QUANTILES, SWAP_COSINE[encoder][cal.window_size]))
    return 1.0 - float(np.arccos(np.clip(cos, -1.0, 1.0))) / np.pi if cal.metric == "angular" else cos
