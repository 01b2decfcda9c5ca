"""The verdict with a pre-registered selection rule (``[verdict] select``): the setting is chosen on the clean
table of the selection set, and eligibility is judged on that same table (hand-made runs and tables)."""

from __future__ import annotations

import pandas as pd

from robustness.analysis.aggregate import load_runs, summarize
from robustness.analysis.preregistered import registered_options
from robustness.analysis.verdict import VerdictOptions, verdict_findings, verdict_tables

N = 200
RULE = "smallest-patience-within-margin"


def records(flipped: set[int]) -> list[dict]:
    """N examples, all right before the attack (so the clean accuracy of the sample is 1.0, unlike the clean
    table's); the attack flips ``flipped``."""
    rows = []
    for i in range(N):
        label = i % 2
        adv = 1 - label if i in flipped else label
        rows.append({
            "schema_version": 1, "example_id": i, "dataset_index": 1000 + i, "label": label,
            "result": "succeeded" if i in flipped else "failed", "orig_pred": label, "adv_pred": adv,
            "orig_text": f"t{i}", "adv_text": f"a{i}", "num_queries": 5, "num_forward_passes": 5,
            "layers_computed": 15, "orig_exit_layer": 3, "adv_exit_layer": 3, "orig_layer_preds": [label] * 3,
            "adv_layer_preds": [adv] * 3, "words_changed": int(i in flipped), "words_total": 5, "attack_time_s": 0.1,
        })
    return rows


def clean_table(**accuracies: float) -> pd.DataFrame:
    """Clean accuracy on the selection set: ``base`` at full depth, ``pabee`` at ``p1``, ``p2`` ..."""
    rows = [["base" if k == "base" else "pabee", "full" if k == "base" else f"patience:{k[1:]}", 372, v, 0.8, 0.55]
            for k, v in accuracies.items()]
    return pd.DataFrame(rows, columns=["model_id", "setting", "n", "accuracy", "min_class_recall", "max_pred_share"])


def _runs(tmp_path, make_run):
    root = tmp_path / "suite"
    make_run(root, "base", "full", None, "pwws", records=records(set(range(0, N, 2))))  # keeps 50%
    make_run(root, "pabee", "pabee", 1, "pwws", records=records(set(range(0, N, 4))))  # keeps 75%
    make_run(root, "pabee", "pabee", 2, "pwws", records=records(set(range(0, N, 2))))  # keeps 50%
    make_run(root, "pabee", "pabee", 3, "pwws", records=records(set(range(0, N, 5))))  # keeps 80%
    runs = load_runs(root)
    return summarize(runs), runs


def test_the_rule_chooses_on_the_table_that_decides_eligibility(tmp_path, make_run):
    summary, runs = _runs(tmp_path, make_run)
    # baseline 0.90 on the selection set; p1 is 2 points below (out), p2 0.5 below (in), p3 above (in)
    clean = clean_table(base=0.90, p1=0.88, p2=0.895, p3=0.91)
    options = VerdictOptions(select=RULE)
    verdict, candidates = verdict_tables(summary, runs, options, clean)
    row = verdict.iloc[0]
    # patience 2, not the best-under-attack p3 nor p1 (which the sample's clean accuracy of 1.0 would allow)
    assert (row["setting"], row["eligible"], row["clean_accuracy"]) == ("patience:2", True, 0.895)
    assert row["baseline_clean_accuracy"] == 0.90 and row["clean_off_sample"]
    assert row["verdict"] == "equivalent"  # 50% vs 50%, the same examples: no pair disagrees
    roles = candidates.set_index("setting")["role"]
    assert roles["patience:2"] == "confirmatory" and roles["patience:1"] == roles["patience:3"] == "exploratory"
    assert row["p_adjusted"] == row["p_value"]  # a family of one: the chosen setting's test
    head = verdict_findings(verdict, options)[0]
    assert f"the setting pre-registered by the rule {RULE} on the selection set" in head
    # the same as pre-registering patience 2 by hand
    fixed, fixed_candidates = verdict_tables(summary, runs, VerdictOptions(setting=2), clean)
    assert fixed.drop(columns="verdict").equals(verdict.drop(columns="verdict"))
    assert list(fixed_candidates["role"]) == list(candidates["role"])


def test_no_patience_within_the_margin_gives_no_eligible_setting(tmp_path, make_run):
    summary, runs = _runs(tmp_path, make_run)
    clean = clean_table(base=0.90, p1=0.85, p2=0.88, p3=0.8)
    verdict, candidates = verdict_tables(summary, runs, VerdictOptions(select=RULE), clean)
    row = verdict.iloc[0]
    assert row["verdict"] == "no_eligible_setting" and not row["eligible"] and row["setting"] == ""
    assert f"by the select rule {RULE}, no patience setting is within 1 points" in row["reason_ineligible"]
    assert "confirmatory" not in set(candidates["role"])  # nothing is confirmatory, everything exploratory
    assert "no verdict, no eligible setting (by the select rule" in verdict_findings(verdict)[1]


def test_the_rule_needs_the_clean_table_of_the_selection_set(tmp_path, make_run):
    summary, runs = _runs(tmp_path, make_run)
    verdict, candidates = verdict_tables(summary, runs, VerdictOptions(select=RULE), None)
    assert verdict.iloc[0]["verdict"] == "no_eligible_setting"
    # eligible on the attacked sample, but no rule chose them: tested as exploratory, never confirmatory
    assert candidates["eligible"].all() and set(candidates["role"]) == {"exploratory"}
    assert "needs clean accuracy on the selection set of pabee and base" in verdict.iloc[0]["reason_ineligible"]


def test_registered_options_per_comparison():
    options = VerdictOptions(select=RULE, margin=0.05)
    clean = clean_table(base=0.90, p1=0.86, p2=0.95)
    local, row = registered_options(options, clean, "pabee", "base")
    assert row is None and local.setting == "patience:1" and local.select is None and local.margin == 0.05
    assert registered_options(VerdictOptions(setting=3), clean, "pabee", "base") == (VerdictOptions(setting=3), None)
