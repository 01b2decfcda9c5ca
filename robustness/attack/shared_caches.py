"""Model-independent TextAttack work shared by the attacks of one recipe at several exit settings.

When one example is attacked at patience 1..5 and full depth, much of each attack's work does not depend on
the model: the candidate texts of a (deterministic) transformation, and the verdicts of the constraints on
them (sentence-encoder similarity, POS tags, embedding distances). TextAttack caches both inside one
``Attack`` (``transformation_cache``, keyed by the text and the indices to modify, used only when every
transformation is deterministic; ``constraints_cache``, keyed by (current text, candidate) for one original
text) and clears them per example. :class:`SharedWork` holds one pair of those caches, the transformation
and the constraint objects (with their own caches, e.g. ``PartOfSpeech``'s tags) for all the attacks of a
task; :class:`SharedWorkAttack` is an ``Attack`` that uses them.

Why records do not change: every cached value is a pure function of its key for one original text, and the
caches are cleared by their owner (:meth:`SharedWork.clear`) before each example, so an attack reads only
values computed for the same example's original text. Random transformations (DeepWordBug's character
edits) are never cached, as in TextAttack. The model-dependent cache (the goal function's) stays private to
each attack and is cleared per example as before. ``tests/suite/test_shared_caches.py`` checks equality of
records with and without sharing.

The sentence encoder (``robustness.resources.sentence_encoder``, embeddings by text) and the counter-fitted
embedding (neighbours, distances) are already one object per process, so they are shared across attacks,
settings and examples without this module.
"""

from __future__ import annotations

from typing import Any

from robustness.resources.textattack_compat import import_textattack

_textattack = import_textattack()
Attack = _textattack.Attack

CACHE_SIZE = 2**15  # TextAttack's default for both caches


def _lru(size: int) -> Any:
    import lru

    return lru.LRU(size)


class SharedWork:
    """The transformation, constraints and caches of the first attack built with it, for every later one."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self.transformation_cache = _lru(cache_size)
        self.constraints_cache = _lru(cache_size)
        self.constraints: list[Any] | None = None
        self.transformation: Any = None

    def components(self, constraints: list[Any], transformation: Any) -> tuple[list[Any], Any]:
        """The shared constraints and transformation (the first ones given); later builds of the same
        recipe must give the same kinds."""
        if self.constraints is None:
            self.constraints, self.transformation = list(constraints), transformation
        elif [type(c) for c in constraints] != [type(c) for c in self.constraints] or \
                type(transformation) is not type(self.transformation):
            raise ValueError("SharedWork is shared by attacks of one recipe only")
        return self.constraints, self.transformation

    def clear(self) -> None:
        """Forget everything: call before each example (cached values hold for one original text)."""
        self.transformation_cache.clear()
        self.constraints_cache.clear()
        for constraint in self.constraints or ():
            if hasattr(constraint, "clear_cache"):
                constraint.clear_cache()


class SharedWorkAttack(Attack):
    """``textattack.Attack`` whose transformation and constraint caches are those of a :class:`SharedWork`."""

    def __init__(self, goal_function: Any, constraints: list[Any], transformation: Any, search_method: Any,
                 shared: SharedWork) -> None:
        constraints, transformation = shared.components(constraints, transformation)
        super().__init__(goal_function, constraints, transformation, search_method)
        self.shared = shared
        self.transformation_cache = shared.transformation_cache
        self.constraints_cache = shared.constraints_cache

    def clear_cache(self, recursive: bool = True) -> None:
        """Clear the model-dependent cache only; the shared ones are cleared by :meth:`SharedWork.clear`."""
        if recursive:
            self.goal_function.clear_cache()
