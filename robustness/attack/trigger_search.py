"""Universal slowdown triggers, the search: one K-word prefix, the same for every input, that pushes the exit
layer of an early-exit model deeper (WAFFLE's universal slowdown attack, Coalson et al. 2023; the search is the
black-box analogue of Wallace et al. 2019's universal triggers: no gradients, only all-layer logits).

**Objective.** For a prefix ``w_1 .. w_K`` and training texts ``x_1 .. x_n`` (labels ``y_i``), the mean slowdown
score ``(1/n) Σ_i score(logits(w_1 .. w_K x_i))``; the score is a :data:`ScoreFn` of one text's all-layer logits,
by default ``exit``, :func:`robustness.attack.goals.slowdown_score`'s ``(e − 1 + c) / L`` (a deeper exit always
scores higher; within one exit layer, closeness to the rule not firing). Pair datasets get the prefix on their
first segment.

**Search** (beam coordinate ascent over positions): start from ``K`` copies of ``init_word`` ("the", as Wallace
et al. do). One *step* visits one position ``k``: for every prefix of the beam and every candidate word, the
prefix with ``w_k`` replaced is scored; the beam becomes the ``beam`` best distinct prefixes among the old beam
and these variants (ties keep the older prefix, then the vocabulary's order, so a change needs a strictly higher
score). Positions are visited left to right, ``iterations`` times; the search stops early after a whole pass
over the positions that did not raise the best score. The answer is the beam's best prefix.

**Cost** in forward passes (texts through the all-layer model): ``n`` for the start, plus at most
``iterations × K × beam × |candidates| × n``; the trace records the exact count after each step.

**Candidates**: the tokenizer's whole words (entries that are alphabetic ASCII, two letters or more, not
special tokens and not ``##`` pieces) or a word file (:func:`read_vocabulary`), then a deterministic sample of
``size`` of them (``random.Random(seed)``, kept in sorted order).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robustness.data import Text
from robustness.models.evaluate import all_layer_logits
from robustness.schema.settings import Setting

__all__ = ["TRIGGER_SCORES", "PrefixScorer", "ScoreFn", "candidate_words", "exit_score", "read_vocabulary",
           "search_cost", "search_trigger", "tokenizer_words", "trigger_score", "with_prefix"]

#: Slowdown score of one text: ``(layer_logits [H, C], setting, num_layers, label) -> score``, higher = slower.
ScoreFn = Callable[[torch.Tensor, Setting, int, int], float]


def exit_score(layer_logits: torch.Tensor, setting: Setting, num_layers: int, label: int) -> float:
    """The ``exit`` score of :mod:`robustness.attack.goals`: ``(e − 1 + c) / L`` (the label is not used).
    Imported when called: that module imports TextAttack, which evaluating a prefix does not need."""
    from robustness.attack.goals import slowdown_score

    return slowdown_score(layer_logits, setting, num_layers)[1]


#: The scores a trigger search can climb, by name (the seam for other slowdown scores).
TRIGGER_SCORES: dict[str, ScoreFn] = {"exit": exit_score}


def trigger_score(name: str) -> ScoreFn:
    """The :data:`ScoreFn` called ``name``; ``ValueError`` naming the known ones."""
    if name not in TRIGGER_SCORES:
        raise ValueError(f"unknown trigger score {name!r}; choose one of {', '.join(TRIGGER_SCORES)}")
    return TRIGGER_SCORES[name]


def tokenizer_words(tokenizer: Any) -> list[str]:
    """The tokenizer's whole words: alphabetic ASCII entries of two letters or more, no special tokens, sorted."""
    special = set(getattr(tokenizer, "all_special_tokens", []))
    return sorted(w for w in tokenizer.get_vocab() if len(w) > 1 and w.isascii() and w.isalpha() and w not in special)


def read_vocabulary(path: str | Path) -> list[str]:
    """Words of a file, the first whitespace-separated field of each non-blank line (so a counter-fitted vectors
    file serves as is); ``ValueError`` when it holds no alphabetic word."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"vocabulary file {path} not found; pass a word list (one word a line) or 'tokenizer'")
    words = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    words = [w for w in dict.fromkeys(words) if w.isalpha()]
    if not words:
        raise ValueError(f"vocabulary file {path} holds no alphabetic word (one word a line)")
    return words


def candidate_words(words: Sequence[str], size: int, seed: int) -> list[str]:
    """A deterministic sample of ``size`` distinct words (all of them when fewer), in sorted order."""
    if size < 1:
        raise ValueError(f"--candidates must be >= 1, got {size}")
    pool = sorted(set(words))
    return pool if size >= len(pool) else sorted(random.Random(seed).sample(pool, size))


def with_prefix(text: Text, words: Sequence[str]) -> Text:
    """``text`` with the words in front (a pair's first segment); no words: the text itself."""
    if not words:
        return text
    prefix = " ".join(words)
    if isinstance(text, tuple):
        return (f"{prefix} {text[0]}", text[1])
    return f"{prefix} {text}"


@dataclass
class PrefixScorer:
    """Mean slowdown score and mean exit layer of prefixes over fixed texts, all prefixes in one batched
    all-layer pass. ``forward_passes`` counts the texts it has run through the model."""

    model: Any
    tokenizer: Any
    texts: Sequence[Text]
    labels: Sequence[int]
    setting: Setting
    score: ScoreFn = exit_score
    batch_size: int = 32
    max_length: int = 128
    progress: Callable[[int], None] | None = None
    forward_passes: int = field(default=0)

    def __call__(self, prefixes: Sequence[Sequence[str]]) -> list[tuple[float, float]]:
        """``(mean score, mean exit layer)`` for each prefix."""
        n = len(self.texts)
        texts = [with_prefix(t, p) for p in prefixes for t in self.texts]
        logits = all_layer_logits(self.model, self.tokenizer, texts, batch_size=self.batch_size,
                                  max_length=self.max_length, progress=self.progress)
        self.forward_passes += len(texts)
        exits, _ = self.model.exit_from_layer_logits(logits, self.setting)
        num_layers = int(self.model.num_layers)
        out = []
        for j in range(len(prefixes)):
            scores = [self.score(logits[:, j * n + i], self.setting, num_layers, int(self.labels[i]))
                      for i in range(n)]
            out.append((sum(scores) / n, float(exits[j * n:(j + 1) * n].float().mean())))
        return out


def search_cost(n: int, length: int, candidates: int, iterations: int, beam: int) -> int:
    """Most forward passes a search can take (see the module docstring)."""
    return n + iterations * length * beam * candidates * n


def _entry(words: Sequence[str], result: tuple[float, float]) -> dict[str, Any]:
    return {"words": list(words), "score": result[0], "mean_exit": result[1]}


def search_trigger(scorer: PrefixScorer, candidates: Sequence[str], length: int, *, iterations: int = 2,
                   beam: int = 1, init_word: str = "the", state: dict[str, Any] | None = None,
                   on_step: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run (or continue, from ``state``) the search of the module docstring; ``on_step(state)`` after each step.

    The state (JSON-serialisable): ``step`` (steps done), ``beam`` (prefixes with ``score`` and ``mean_exit``),
    ``pass_start_score`` (the best score when the current pass over positions began), ``candidates`` (a resumed
    search must be given the same), ``trace`` (one entry per step: iteration, position, best prefix, its score and
    mean exit, forward passes so far), ``forward_passes``, ``done``. Returns the final state; ``beam[0]`` is the
    trigger."""
    if length < 1 or iterations < 1 or beam < 1:
        raise ValueError(f"--length, --iterations and --beam must be >= 1, got {length}, {iterations}, {beam}")
    if state is None:
        start = [init_word] * length
        first = _entry(start, scorer([start])[0])
        state = {"step": 0, "beam": [first], "pass_start_score": first["score"], "forward_passes":
                 scorer.forward_passes, "done": False,
                 "trace": [{"iteration": 0, "position": None, **first, "forward_passes": scorer.forward_passes}]}
        if on_step is not None:
            on_step(state)
    elif state.get("candidates") not in (None, list(candidates)):
        raise ValueError("the candidate words differ from those the saved search used (the vocabulary changed); "
                         "start afresh (--overwrite)")
    state["candidates"] = list(candidates)
    scorer.forward_passes = int(state["forward_passes"])
    while not state["done"]:
        step = int(state["step"])
        iteration, position = divmod(step, length)
        variants = [[*e["words"][:position], w, *e["words"][position + 1:]] for e in state["beam"]
                    for w in candidates if w != e["words"][position]]
        pool = list(state["beam"])
        seen = {tuple(e["words"]) for e in pool}
        fresh = [v for v in dict.fromkeys(map(tuple, variants)) if v not in seen]
        pool += [_entry(v, r) for v, r in zip(fresh, scorer(fresh) if fresh else [], strict=True)]
        state["beam"] = sorted(pool, key=lambda e: -e["score"])[:beam]  # stable: older prefixes win ties
        best = state["beam"][0]
        state["step"] = step + 1
        state["forward_passes"] = scorer.forward_passes
        state["trace"].append({"iteration": iteration + 1, "position": position + 1, **best,
                               "forward_passes": scorer.forward_passes})
        if state["step"] % length == 0:
            if best["score"] <= state["pass_start_score"] or state["step"] >= iterations * length:
                state["done"] = True
            state["pass_start_score"] = best["score"]
        if on_step is not None:
            on_step(state)
    return state
