"""The selection set and the pre-registered selection rule on hand-made clean tables whose answer is known."""

from __future__ import annotations

import math

import pytest

from robustness.schema.selection import (
    SELECTION_RULES,
    SelectionSplit,
    divide,
    pair_baselines,
    select_setting,
    selection_table,
    within_margin,
)
from robustness.schema.specs import VerdictOptions

RULE = "smallest-patience-within-margin"


def rows(**accuracies: float) -> list[dict]:
    """Clean-table rows: ``p2=0.9`` is patience 2, ``full``/``ent`` are full depth and an entropy threshold."""
    names = {"full": "full", "ent": "entropy:0.3"}
    return [{"setting": names.get(k, f"patience:{k[1:]}"), "n": 400, "accuracy": v} for k, v in accuracies.items()]


def test_the_rule_picks_the_smallest_patience_within_the_margin():
    # baseline 0.90, margin 1 point: p1 (0.85) and p2 (0.889) are out, p3 (0.895) and p4 (0.93) are in
    table = rows(p4=0.93, p1=0.85, p3=0.895, p2=0.889, full=0.90)
    assert select_setting(RULE, table, 0.90, 0.01) == "patience:3"
    # a wider margin lets p2 in; a zero margin needs at least the baseline's accuracy
    assert select_setting(RULE, table, 0.90, 0.02) == "patience:2"
    assert select_setting(RULE, table, 0.90, 0.0) == "patience:4"
    shown = selection_table(table, 0.90, 0.01)
    assert [r["setting"] for r in shown] == ["patience:1", "patience:2", "patience:3", "patience:4"]  # no full
    assert [r["within_margin"] for r in shown] == [False, False, True, True]
    assert {r["baseline_accuracy"] for r in shown} == {0.90} and {r["n"] for r in shown} == {400}


def test_ties_and_the_margin_boundary():
    # p2 and p3 tie within the margin: the smaller patience wins, whatever the row order
    assert select_setting(RULE, rows(p3=0.9, p2=0.9, p1=0.5), 0.9, 0.01) == "patience:2"
    # exactly margin below the baseline is within it (the verdict's eligibility: only strictly below is out)
    assert select_setting(RULE, rows(p1=0.75, p2=0.875), 0.875, 0.125) == "patience:1"
    assert select_setting(RULE, rows(p1=0.89), 0.9, 0.01) == "patience:1"  # 0.9 - 0.01 == 0.89 in floats too


def test_within_margin_is_the_one_non_inferiority_comparison():
    assert within_margin(0.89, 0.90, 0.01) and within_margin(0.75, 0.875, 0.125)  # exactly at the boundary
    assert not within_margin(0.8899, 0.90, 0.01)  # just below it
    # 0.545 - 0.05 == 0.49500000000000005 in floats: exactly 5 points below still qualifies, 0.01 point more not
    assert 0.495 < 0.545 - 0.05 and within_margin(0.495, 0.545, 0.05) and not within_margin(0.4949, 0.545, 0.05)
    assert select_setting(RULE, rows(p1=0.495, p2=0.6), 0.545, 0.05) == "patience:1"
    assert select_setting(RULE, rows(p1=0.4949, p2=0.6), 0.545, 0.05) == "patience:2"
    # unknown accuracy never qualifies, whichever side is unknown and however wide the margin
    for accuracy, baseline in ((math.nan, 0.9), (0.9, math.nan), (math.nan, math.nan)):
        assert not within_margin(accuracy, baseline, 0.99)
    assert [r["within_margin"] for r in selection_table(rows(p1=math.nan, p2=0.9), 0.9, 0.5)] == [False, True]
    assert select_setting(RULE, rows(p1=0.9), math.nan, 0.5) is None


def test_none_qualifies():
    assert select_setting(RULE, rows(p1=0.80, p2=0.85, full=0.95), 0.90, 0.01) is None
    assert select_setting(RULE, rows(p1=math.nan), 0.90, 0.01) is None  # NaN never qualifies
    # settings other than patience are never chosen, even within the margin
    assert select_setting(RULE, rows(ent=0.95, full=0.95), 0.90, 0.01) is None
    assert select_setting(RULE, [], 0.90, 0.01) is None


def test_unknown_rule_and_setting_with_select_are_refused():
    assert SELECTION_RULES == (RULE,)
    with pytest.raises(ValueError, match="select must be one of smallest-patience-within-margin, got 'best'"):
        select_setting("best", rows(p1=0.9), 0.9, 0.01)
    with pytest.raises(ValueError, match="select must be one of"):
        VerdictOptions(select="best")
    with pytest.raises(ValueError, match="verdict select: give either a pre-registered setting or a select rule"):
        VerdictOptions(setting=2, select=RULE)
    assert VerdictOptions(select=RULE).setting is None


def test_divide_is_disjoint_and_covers_the_split():
    division = divide("glue/sst2", "validation", 4, 0, [7, 2, 5, 0], 10)
    assert division.attack_sample == (0, 2, 5, 7)
    assert division.selection_set == (1, 3, 4, 6, 8, 9)
    assert set(division.attack_sample) | set(division.selection_set) == set(range(10))
    assert division.key.startswith("validation outside the attack sample (n=4 seed=0): 6 examples, ")
    assert SelectionSplit.from_dict(division.to_dict()) == division
    assert division.to_dict()["digest"] == division.digest
    assert divide("glue/sst2", "validation", 4, 0, [0, 2, 5, 7], 10).digest == division.digest
    assert divide("glue/sst2", "validation", 4, 1, [0, 2, 5, 8], 10).digest != division.digest
    # the whole split attacked: an empty selection set
    assert divide("d", "validation", 3, 0, [0, 1, 2], 3).selection_set == ()


def test_divide_with_a_declared_selection_split():
    division = divide("rotten_tomatoes", "test", 3, 0, [1, 4, 6], 8, "validation", 5)
    assert division.selection_split == "validation" and division.selection_set == (0, 1, 2, 3, 4)
    assert division.key.startswith("validation (all; the attack sample is test n=3 seed=0): 5 examples")
    with pytest.raises(ValueError, match="overlaps the attack sample"):
        SelectionSplit("d", "validation", 2, 0, (1, 2), "validation", (2, 3))


def test_baselines_are_paired_as_the_verdict_pairs_them():
    models = {"p6": ("pabee", 6), "b6": ("full", 6), "p12": ("pabee", 12), "b12": ("full", 12), "p4": ("pabee", 4)}
    assert pair_baselines(models) == [("p6", "b6"), ("p12", "b12"), ("p4", "b6"), ("p4", "b12")]
    assert pair_baselines({"p": ("pabee", 2)}) == []
