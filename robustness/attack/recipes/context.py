"""What a recipe build reads: the local resources (:class:`Resources`) and the per-build context that loads
the counter-fitted embedding once and makes sentence-encoder constraints."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

from robustness import resources as res
from robustness.resources import sentence_encoder


@dataclass(frozen=True)
class Resources:
    """Local resources; build with :meth:`from_args`, where ``None`` falls back to env vars."""

    nltk_data: str | None = None  # env NLTK_DATA
    lexicons_dir: str | None = None  # env ROBUSTNESS_LEXICONS
    cache_dir: str | None = None  # env ROBUSTNESS_CACHE
    sentence_encoder_path: str | None = None  # env ROBUSTNESS_SENTENCE_ENCODER
    mlm: str | None = None  # local masked-LM dir for bae / bert-attack
    max_words: int | None = None  # restrict the counter-fitted vocabulary to the most frequent words (tests)
    offline: bool | None = None  # None: env ROBUSTNESS_OFFLINE / HF_HUB_OFFLINE

    @classmethod
    def from_args(cls, **values: Any) -> Resources:
        """Fields from ``values``; ``None`` or missing path fields come from env vars."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown resource fields: {', '.join(sorted(unknown))}")
        env = {name: os.environ.get(var) for name, var in _ENV.items()}
        env.update({k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in values.items() if v is not None})
        return cls(**env)


_ENV = {
    "nltk_data": "NLTK_DATA",
    "lexicons_dir": "ROBUSTNESS_LEXICONS",
    "cache_dir": "ROBUSTNESS_CACHE",
    "sentence_encoder_path": "ROBUSTNESS_SENTENCE_ENCODER",
}


@dataclass
class BuildContext:
    resources: Resources
    mlm: str | None
    #: the offline sentence encoder (use-m3 | minilm); None: each recipe's default (recipe_encoder)
    sentence_encoder: str | None = None
    _embedding: Any = field(default=None, repr=False)

    def embedding(self) -> Any:
        if self._embedding is None:
            r = self.resources
            self._embedding = res.counter_fitted_embedding(r.lexicons_dir, r.cache_dir, max_words=r.max_words)
        return self._embedding

    def encoder(self, recipe: str, **kwargs: Any) -> Any:
        """The recipe's sentence-encoder constraint on the chosen offline encoder, at its stock threshold."""
        name = sentence_encoder.recipe_encoder(recipe, self.sentence_encoder)
        threshold = sentence_encoder.calibrated_threshold(recipe, encoder=name)
        path = self.resources.sentence_encoder_path
        return sentence_encoder.local_sentence_encoder(path, encoder=name, threshold=threshold, **kwargs)


def untargeted(w: Any) -> Any:
    from textattack.goal_functions import UntargetedClassification

    return UntargetedClassification(w)
