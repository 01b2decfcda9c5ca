"""The trigger directory schema: what one universal slowdown trigger search computes (:class:`TriggerSpec`), the
files it writes, and the evaluation rows a reader gets (each field documented where it is declared).

A trigger directory (``robustness trigger --out DIR``; a suite's ``<out>/triggers/<run_id>``) holds
``spec.json`` (the spec, ``kind: "trigger"``, ``run_id``, the model facts and fingerprint), ``run.json``
(status), ``search_state.json`` (the search so far, replaced atomically after every step),
:data:`TRIGGER_FILE` (the found prefix, the search trace and cost, the spec, the fingerprint) and
:data:`EVALUATION_FILE` (one row per evaluated model and setting, :data:`EVALUATION_FIELDS`) with
``evaluation.csv`` beside it. Searching and writing are the attack stack's (:mod:`robustness.attack.trigger`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from robustness.schema.packed import read_stored
from robustness.schema.settings import parse_setting

__all__ = ["EVALUATION_FIELDS", "EVALUATION_FILE", "STATE_FILE", "TRIGGER_FILE", "TriggerSpec", "read_rows"]

TRIGGER_FILE, STATE_FILE, EVALUATION_FILE = "trigger.json", "search_state.json", "evaluation.jsonl"
_LOCATIONS = ("model_dir", "data_dir")

#: The fields of an evaluation row. Means are over all n examples of the attack sample, each once without and
#: once with the prefix (a trigger skips no example).
EVALUATION_FIELDS = {
    "trigger_id": "run id of the trigger search",
    "prefix": "the trigger, its words joined by spaces",
    "length": "words in the prefix",
    "source_model_id": "model the trigger was searched on", "source_setting": "setting it was searched at",
    "model_id": "model evaluated (the source, or a replay target)",
    "model_fingerprint": "fingerprint of the evaluated model's weights (None for an in-memory model)",
    "setting": "exit setting evaluated (resolved label)",
    "setting_reference": "the setting as asked for (e.g. entropy@patience:2, resolved in the evaluated model)",
    "replayed": "true unless the model and setting are the search's own",
    "dataset": "dataset", "split": "split of the attack sample", "seed": "seed the sample was drawn with",
    "n": "examples evaluated", "num_layers": "L of the evaluated model",
    "search_score": "mean slowdown score of the prefix on the training subset",
    "clean_mean_exit": "mean exit layer without the prefix", "trigger_mean_exit": "mean exit layer with it",
    "exit_shift": "trigger_mean_exit − clean_mean_exit",
    "clean_accuracy": "accuracy at the exit without the prefix", "trigger_accuracy": "accuracy at the exit with it",
    "clean_at_last_layer": "share exiting at layer L without the prefix",
    "trigger_at_last_layer": "share exiting at layer L with it",
    "prediction_changed": "share whose exit prediction the prefix changed",
    "efficiency_gain_left": "(L / trigger_mean_exit − 1) / (L / clean_mean_exit − 1); NaN when clean saves nothing",
}


@dataclass(frozen=True)
class TriggerSpec:
    """One trigger search: the model at ``setting`` (a resolved setting label), a prefix of ``length`` words,
    searched on ``train_n`` examples of ``train_split`` (drawn with ``seed``) over ``candidates`` words of
    ``vocabulary`` ("tokenizer" or a word file) for at most ``iterations`` passes with a beam of ``beam``,
    climbing the slowdown ``score``; evaluated on ``n`` examples of ``split`` drawn with ``seed`` (the sample an
    attack run with the same dataset, split, n and seed attacks)."""

    model_id: str
    model_dir: str
    setting: str
    length: int = 3
    dataset: str = "glue/sst2"
    train_split: str = "train"
    train_n: int = 64
    split: str = "validation"
    n: int = 100
    seed: int = 0
    candidates: int = 50
    iterations: int = 2
    beam: int = 1
    vocabulary: str = "tokenizer"
    score: str = "exit"
    batch_size: int = 32
    max_length: int = 128
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("length", "train_n", "n", "candidates", "iterations", "beam", "batch_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        object.__setattr__(self, "setting", parse_setting(self.setting).label)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def run_id(self) -> str:
        """``<model>-<setting slug>_trigger<K>_<dataset>_<hash of what is computed>``."""
        content = {k: v for k, v in asdict(self).items() if k not in _LOCATIONS}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:6]
        slug = "".join(c if c.isalnum() else "-" for c in f"{self.model_id}-{parse_setting(self.setting).slug}")
        return f"{slug.lower()}_trigger{self.length}_{self.dataset.split('/')[-1]}_{digest}"


def read_rows(trigger_dir: str | Path) -> list[dict[str, Any]]:
    """The evaluation rows of a trigger directory, from ``evaluation.jsonl`` or its packed form (a torn last line,
    from an interrupted write, is left out)."""
    data = read_stored(Path(trigger_dir) / EVALUATION_FILE)
    rows = []
    if data is not None:
        for line in data.decode("utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows
