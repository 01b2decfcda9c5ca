"""bench's side of one consistent selection (:mod:`robustness.schema.selection`): divide the suite's clean split
into the attack sample and the selection set, check a ``[verdict] select`` rule before any work, and record the
division and the rule's choices in ``<out>/selection.json`` before any attack runs. The clean tables
(:func:`robustness.suite.stages.clean_tables`), the threshold calibration and the verdict's eligibility all read
the selection set drawn here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustness.provenance import read_json_object, write_json_atomic
from robustness.schema.selection import (
    SELECTION_FILE,
    SelectionSplit,
    divide,
    pair_baselines,
    select_setting,
    selection_table,
)

if TYPE_CHECKING:
    import pandas as pd

    from robustness.data import Examples

__all__ = ["check_select_rule", "choose", "draw_selection", "write_selection"]


def draw_selection(suite) -> tuple[SelectionSplit, Examples, list[int]]:
    """The suite's division (the attack sample drawn as the runs draw it; with ``study_n``, the study's sample of
    which the suite's must be a subset), the examples of the selection split, and the positions in them of the
    selection set."""
    from robustness.data import load_examples, sample_indices

    examples = load_examples(suite.dataset, suite.split, data_dir=suite.data_dir)
    n = suite.n if suite.study_n is None else suite.study_n
    if n > len(examples):
        raise ValueError(f"[suite] {'n' if suite.study_n is None else 'study_n'}: the {suite.split} split of "
                         f"{suite.dataset} has {len(examples)} rows, fewer than the {n} examples asked for")
    sample = sample_indices(len(examples), n, suite.seed)
    if n != suite.n:
        if not set(sample_indices(len(examples), suite.n, suite.seed)) <= set(sample):
            raise ValueError(f"[suite] the n = {suite.n} examples drawn with seed {suite.seed} are not all among "
                             f"the study_n = {n} drawn with it; attack all {n} or choose another n")
    other = None
    if suite.selection_split not in (None, suite.split):
        other = load_examples(suite.dataset, suite.selection_split, data_dir=suite.data_dir)
    division = divide(suite.dataset, suite.split, n, suite.seed, sample, len(examples),
                      suite.selection_split, None if other is None else len(other))
    examples = examples if other is None else other
    chosen = set(division.selection_set)
    return division, examples, [i for i, index in enumerate(examples.indices) if index in chosen]


def check_select_rule(suite, selection_size: int) -> None:
    """A ``[verdict] select`` rule needs a non-empty selection set (``selection_size`` examples), an early-exit
    model with a patience setting (run, or a candidate) and a full-depth baseline; ``ValueError`` otherwise."""
    rule = suite.verdict.select
    if rule is None:
        return
    if selection_size < 1:
        raise ValueError(f"[verdict] select = {rule!r} needs a selection set, but n = {suite.n} takes the whole "
                         f"{suite.split} split: lower n or set [suite] selection_split")
    if not any(m.head != "full" and any(s.policy == "patience" for s in (*m.settings, *m.candidates))
               for m in suite.models):
        raise ValueError(f"[verdict] select = {rule!r} chooses a patience, but no early-exit model of the suite "
                         "runs or lists as a candidate a patience setting")
    if not any(m.head == "full" for m in suite.models):
        raise ValueError(f"[verdict] select = {rule!r} compares with a full-depth baseline; add a model with "
                         "head = \"full\"")


def choose(rule: str, clean: pd.DataFrame, models: dict[str, tuple[str, int]], margin: float) -> list[dict]:
    """The rule's choice for each (early-exit model, baseline) pair (``models``: id -> (head, layers)), from the
    clean table on the selection set (:data:`robustness.analysis.clean_tables.CLEAN_COLUMNS`): the chosen setting
    (None: none qualifies), the baseline's clean accuracy and the table it was chosen from."""
    out = []
    for model, baseline in pair_baselines(models):
        base = clean[(clean["model_id"] == baseline) & (clean["setting"] == "full")]
        if not len(base):
            raise ValueError(f"no clean accuracy of baseline {baseline!r} at full depth on the selection set")
        accuracy = float(base["accuracy"].iloc[0])
        rows = clean[clean["model_id"] == model].to_dict(orient="records")
        out.append({"model": model, "baseline": baseline, "rule": rule, "baseline_accuracy": accuracy,
                    "setting": select_setting(rule, rows, accuracy, margin),
                    "table": selection_table(rows, accuracy, margin)})
    return out


def write_selection(out: Path, suite, division: SelectionSplit, choices: list[dict] | None, *,
                    log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Record the division (and with a rule its ``choices``) in ``<out>/selection.json``, atomically, unless it
    already says the same; says when a recorded choice changes (the models or the margin changed)."""
    path = Path(out) / SELECTION_FILE
    options = suite.verdict
    data = {"division": division.to_dict(), "setting": options.setting, "select": options.select,
            "margin": options.margin, "choices": choices}
    before = read_json_object(path) if path.is_file() else None
    if before == data:
        return data
    old = {(c["model"], c["baseline"]): c["setting"] for c in (before or {}).get("choices") or []}
    for c in choices or []:
        if (c["model"], c["baseline"]) in old and old[c["model"], c["baseline"]] != c["setting"]:
            log(f"[bench] pre-registered setting of {c['model']} vs {c['baseline']} changed from "
                f"{old[c['model'], c['baseline']]} to {c['setting']} (the models or the margin changed)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data)
    return data
