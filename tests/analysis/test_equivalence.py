"""Folding settings whose exits are identical by construction (robustness.analysis.equivalence), on hand-made
summaries and records where the right answer is known."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from robustness.analysis.equivalence import (
    binary_entropy,
    equivalent_by_construction,
    fold_equivalent,
    fold_note,
    folded,
    records_identical,
)
from robustness.analysis.runs import Run

H = binary_entropy(0.9)  # 0.3250829733914482


def test_binary_entropy_values():
    assert binary_entropy(0.5) == pytest.approx(math.log(2))
    assert binary_entropy(1.0) == 0.0
    assert H == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))


@pytest.mark.parametrize(("a", "b", "layers", "classes", "expected"), [
    ("patience:5", "full", 6, 2, True),       # patience L-1 can only fire at L
    ("patience:5", "full", 6, None, True),    # whatever the classes
    ("patience:4", "full", 6, 2, False),      # can fire at layer 5
    ("patience:2", "full", 3, 2, True),
    ("patience:1", "full", 3, 2, False),
    (f"entropy:{H}", "maxprob:0.9", 6, 2, True),
    (f"entropy:{H * 1.001}", "maxprob:0.9", 6, 2, True),   # matched thresholds printed to a few digits
    (f"entropy:{H * 1.1}", "maxprob:0.9", 6, 2, False),    # a different threshold
    (f"entropy:{H}", "maxprob:0.9", 6, 3, False),          # three classes: not functions of each other
    (f"entropy:{H}", "maxprob:0.9", 6, None, False),       # classes unknown
    ("entropy:0.3", "patience:2", 6, 2, False),
    ("maxprob:0.4", f"entropy:{binary_entropy(0.6)}", 6, 2, False),  # max p >= 1/2 always exits
])
def test_equivalent_by_construction(a, b, layers, classes, expected):
    assert equivalent_by_construction(a, b, layers, classes) is expected
    assert equivalent_by_construction(b, a, layers, classes) is expected


def _row(setting: str, recipe: str = "pwws", **metrics) -> dict:
    row = {"dataset": "sst2", "recipe": recipe, "goal": "accuracy", "model_id": "pabee", "head": "pabee",
           "setting": setting, "num_layers": 6, "n": 100, "run_id": f"run-{setting}-{recipe}",
           "accuracy_under_attack": 0.2, "mean_queries": 30.5, "wall_time_s": 10.0}
    return {**row, **metrics}


def _summary(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_fold_from_tables_folds_equivalent_rows_with_equal_metrics():
    summary = _summary(_row("patience:1", accuracy_under_attack=0.1), _row("patience:5"),
                       _row(f"entropy:{H}", accuracy_under_attack=0.3), _row("maxprob:0.9", accuracy_under_attack=0.3,
                                                                              wall_time_s=99.0), _row("full"))
    out = fold_equivalent(summary, num_classes=2)
    assert list(out["same_as"]) == ["", "full", "", f"entropy:{H}", ""]
    assert len(out) == 5  # every run stays in the summary
    shown = folded(out)
    assert list(shown["setting"]) == ["patience:1", f"entropy:{H}", "full"]
    assert list(shown["setting_shown"]) == ["patience:1", f"entropy:{H} = maxprob:0.9", "full = patience:5"]
    assert "patience:5 into full" in fold_note(out) and "summary.csv" in fold_note(out)


def test_not_folded_when_runs_differ_or_classes_are_three():
    summary = _summary(_row("patience:5", mean_queries=30.6), _row("full"),
                       _row(f"entropy:{H}"), _row("maxprob:0.9"))
    out = fold_equivalent(summary, num_classes=2)
    assert list(out["same_as"]) == ["", "", "", f"entropy:{H}"]  # patience:5's queries differ: kept apart
    three = fold_equivalent(summary.drop(index=[0]), num_classes=3)
    assert list(three["same_as"]) == ["", "", ""]  # maxprob/entropy never fold with three classes
    assert fold_note(three) == ""


def test_fold_only_within_one_recipe_goal_and_model():
    summary = _summary(_row("patience:5", recipe="pwws"), _row("full", recipe="textfooler"),
                       _row("patience:5", recipe="a2t", goal="slowdown"), _row("full", recipe="a2t"))
    assert list(fold_equivalent(summary, num_classes=2)["same_as"]) == ["", "", "", ""]


def test_num_classes_column_is_used():
    summary = _summary(_row(f"entropy:{H}", num_classes=2), _row("maxprob:0.9", num_classes=2))
    assert list(fold_equivalent(summary)["same_as"]) == ["", f"entropy:{H}"]
    assert list(fold_equivalent(summary.drop(columns="num_classes"))["same_as"]) == ["", ""]


def _records(exits: list[int], preds: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"example_id": range(len(exits)), "result": ["succeeded"] * len(exits),
                         "orig_pred": preds, "adv_pred": [1 - p for p in preds], "orig_exit_layer": exits,
                         "adv_exit_layer": exits, "num_queries": [5] * len(exits), "adv_text": ["x"] * len(exits)})


def test_records_identical():
    a = _records([6, 6, 6], [0, 1, 0])
    assert records_identical(a, a.iloc[::-1].copy())  # order does not matter, example_id does
    assert not records_identical(a, _records([6, 5, 6], [0, 1, 0]))  # one exit differs
    assert not records_identical(a, _records([6, 6, 6], [0, 1, 1]))  # one prediction differs
    assert not records_identical(a, _records([6, 6], [0, 1]))


def test_fold_with_records_decides_by_records_not_metrics():
    summary = _summary(_row("patience:5"), _row("full"))
    same = [Run(Path("a"), {"run_id": "run-patience:5-pwws"}, {}, _records([6, 6], [0, 1])),
            Run(Path("b"), {"run_id": "run-full-pwws"}, {}, _records([6, 6], [0, 1]))]
    assert list(fold_equivalent(summary, same)["same_as"]) == ["full", ""]
    differ = [same[0], Run(Path("b"), {"run_id": "run-full-pwws"}, {}, _records([6, 6], [1, 1]))]
    assert list(fold_equivalent(summary, differ)["same_as"]) == ["", ""]  # equal metrics, different records


def test_folded_slice_keeps_a_row_whose_target_is_not_shown():
    out = fold_equivalent(_summary(_row("patience:5"), _row("full"), _row("patience:1", mean_queries=1.0)))
    assert list(folded(out)["setting"]) == ["full", "patience:1"]
    alone = folded(out[out["setting"] != "full"])  # e.g. the slowdown table, which has no full-depth row
    assert list(alone["setting_shown"]) == ["patience:5", "patience:1"]
