"""Per-example attack records: the schema every later stage reads, and safe read/append.

One JSON object per line in ``<run>/records.jsonl`` (``records.jsonl.gz`` in a packed copy of the run,
:mod:`robustness.schema.packed`, read the same way). A line is appended and flushed when its example is
finished, so a run killed at any moment leaves only whole lines -- except possibly a torn last line,
which :func:`read_records` drops (and :func:`truncate_torn_tail` removes before resuming).

Schema versions: 3 (current) adds ``slowdown_score``; a version-2 record is read as version 3 with
``slowdown_score`` ``"exit"`` for a slowdown record (the only score version 2 had) and ``None`` otherwise.
Version 2 added the deployed cost (``layers_computed`` now means what a per-example
early-exit model would have run; ``layers_encoded`` what this process ran), ``query_mean_exit_layer``,
``goal`` and ``goal_target``. A version-1 record is read as version 2 with its ``layers_computed`` (which was
the encoded cost) moved to ``layers_encoded`` and the fields it lacks set to ``None`` (unknown, never 0), and
``goal`` ``"accuracy"`` (the only goal version 1 had).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict

from robustness.schema.packed import read_stored

SCHEMA_VERSION = 3

Result = Literal["succeeded", "failed", "skipped"]


class AttackRecord(TypedDict):
    """One attacked example. ``adv_*`` fields are ``None`` when ``result == "skipped"``."""

    schema_version: int
    #: Position of the example in the run's deterministic sample (0-based); unique within a run.
    example_id: int
    #: Index of the example in the dataset split it was drawn from.
    dataset_index: int
    #: Gold label (int).
    label: int
    #: "succeeded" (prediction flipped), "failed" (budget/search exhausted) or "skipped" (the original
    #: text was already misclassified, so it was not attacked -- TextAttack semantics).
    result: Result
    #: Prediction (at the run's exit policy) on the original / final perturbed text.
    orig_pred: int
    adv_pred: int | None
    #: Original and final perturbed text; for sentence pairs, the columns joined by "\n".
    orig_text: str
    adv_text: str | None
    #: TextAttack's ``num_queries``: goal-function queries, *including* cache hits.
    num_queries: int
    #: Distinct texts queried for this example (what a standalone model would have encoded for it).
    num_forward_passes: int
    #: Deployed cost: Σ over those texts of each text's exit layer at the run's setting -- the transformer
    #: layers a per-example early-exit model would have run to answer the attack (None: unknown, v1 record).
    layers_computed: int | None
    #: What the run's own queries cost this process's inference for those texts: each text's exit layer
    #: (the lazy layer cache, or true early exit), L for a text whose every layer the goal reads (the
    #: slowdown score), L per gradient query. Records written before the lazy cache counted L per text.
    layers_encoded: int
    #: Mean exit layer over every distinct text queried for the example (= layers_computed /
    #: num_forward_passes): where an attack's intermediate queries exit, not only the final text's.
    query_mean_exit_layer: float | None
    #: Exit layer (1..L) on the original / perturbed text under the run's exit policy.
    orig_exit_layer: int
    adv_exit_layer: int | None
    #: Argmax of every internal classifier (layer 1..L) on the original / perturbed text; for a
    #: full-depth baseline (one head) a list of one.
    orig_layer_preds: list[int]
    adv_layer_preds: list[int] | None
    #: Words changed by the attack, and words in the original text (TextAttack word segmentation).
    words_changed: int | None
    words_total: int
    #: Wall time spent on this example, seconds.
    attack_time_s: float
    #: What the attack optimised: "accuracy" (flip the prediction at the exit) or "slowdown" (push the exit
    #: deeper), and the goal's target (slowdown: the exit layer to reach; accuracy: None).
    goal: str
    goal_target: int | None
    #: Slowdown goal: the score that guided the search ("exit", "waffle" or "oavg",
    #: robustness.attack.goals); None for the accuracy goal.
    slowdown_score: str | None


RECORD_FIELDS: tuple[str, ...] = tuple(AttackRecord.__annotations__)


#: Fields a version-1 record lacks (:func:`upgrade_record` fills them).
V2_FIELDS = ("layers_encoded", "query_mean_exit_layer", "goal", "goal_target")


def upgrade_record(record: dict) -> dict:
    """A record of any known schema version as the current version (see the module docstring)."""
    version = record.get("schema_version")
    if version == SCHEMA_VERSION:
        return record
    if version not in (1, 2):
        raise ValueError(f"record has unknown schema_version {version!r} (this version reads 1 to {SCHEMA_VERSION})")
    upgraded = dict(record)
    if version == 1:
        upgraded.update(layers_encoded=record.get("layers_computed"), layers_computed=None,
                        query_mean_exit_layer=None, goal="accuracy", goal_target=None)
    upgraded.update(schema_version=SCHEMA_VERSION,
                    slowdown_score="exit" if upgraded.get("goal") == "slowdown" else None)
    return upgraded


def validate_record(record: dict) -> AttackRecord:
    """Raise ``ValueError`` if ``record`` lacks a field or has an unknown ``result``."""
    missing = [name for name in RECORD_FIELDS if name not in record]
    if missing:
        raise ValueError(f"record is missing fields: {', '.join(missing)}")
    if record["result"] not in ("succeeded", "failed", "skipped"):
        raise ValueError(f"record has unknown result {record['result']!r}")
    return record  # type: ignore[return-value]


def read_records(path: str | Path) -> list[AttackRecord]:
    """All complete records of ``records.jsonl``, or of its packed form ``records.jsonl.gz``
    (:mod:`robustness.schema.packed`); a missing file is empty; a torn last line is ignored."""
    path = Path(path)
    data = read_stored(path)
    if data is None:
        return []
    records: list[AttackRecord] = []
    for number, raw in whole_lines(data):
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
            records.append(validate_record(upgrade_record(record)))
        except ValueError as exc:  # includes JSON and UTF-8 decoding errors
            raise ValueError(f"{path}, line {number}: not a valid record: {exc}") from None
    return records


def whole_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of every whole line of an appended JSON-lines file's ``data``, stopping at a torn
    last line (no trailing newline: a stop in the middle of an append)."""
    for number, raw in enumerate(io.BytesIO(data), 1):
        if not raw.endswith(b"\n"):
            return  # torn tail of an interrupted write
        yield number, raw


def truncate_torn_tail(path: str | Path) -> None:
    """Cut a partial last line (no trailing newline) so appends start on a fresh line."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as handle:
            handle.truncate(cut)


def append_record(path: str | Path, record: AttackRecord) -> None:
    """Append one record as a single line, flushed and fsynced."""
    validate_record(record)
    append_json_line(path, record)


def append_json_line(path: str | Path, value: Any) -> None:
    """Append ``value`` as one JSON line, flushed and fsynced (the append of every JSON-lines file of a run or
    bench output)."""
    line = json.dumps(value, ensure_ascii=False) + "\n"
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
