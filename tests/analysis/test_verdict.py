"""The verdict on hand-made records whose right answer is known."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from robustness.analysis.aggregate import load_runs, summarize
from robustness.analysis.metrics import mcnemar_exact
from robustness.analysis.verdict import (
    COLUMNS,
    VERDICTS,
    VerdictOptions,
    exploratory_finding,
    verdict_findings,
    verdict_tables,
)

N = 200
RULE = "smallest-patience-within-margin"
LABELS = [i % 2 for i in range(N)]


def records(clean_wrong: set[int], flipped: set[int], constant: int | None = None, n: int = N) -> list[dict]:
    """Records for ``n`` examples: the clean prediction is wrong on ``clean_wrong`` (or ``constant`` everywhere),
    the attack flips the examples of ``flipped`` that were right; every layer predicts the exit class."""
    rows = []
    for i, label in enumerate(i % 2 for i in range(n)):
        pred = constant if constant is not None else (1 - label if i in clean_wrong else label)
        result = "skipped" if pred != label else ("succeeded" if i in flipped else "failed")
        adv = None if result == "skipped" else (1 - label if result == "succeeded" else label)
        rows.append({
            "schema_version": 1, "example_id": i, "dataset_index": 1000 + i, "label": label, "result": result,
            "orig_pred": pred, "adv_pred": adv, "orig_text": f"t{i}", "adv_text": None if adv is None else f"a{i}",
            "num_queries": 5, "num_forward_passes": 5, "layers_computed": 15, "orig_exit_layer": 3,
            "adv_exit_layer": None if adv is None else 3, "orig_layer_preds": [pred] * 3,
            "adv_layer_preds": None if adv is None else [adv] * 3, "words_changed": 1 if result == "succeeded" else
            (None if adv is None else 0), "words_total": 5, "attack_time_s": 0.1,
        })
    return rows


WRONG = set(range(0, N, 10))  # 20 clean errors: 90% clean accuracy
BASE_FLIPPED = set(range(N)) - set(range(1, N, 3))  # the baseline keeps only ~1/3 of its examples


def _verdict(tmp_path, make_run, settings: dict[int | None, list[dict]], options: VerdictOptions | None = None,
             base: list[dict] | None = None):
    root = tmp_path / "suite"
    make_run(root, "base", "full", None, "pwws", records=base or records(WRONG, BASE_FLIPPED))
    for patience, rows in settings.items():
        make_run(root, "pabee", "pabee", patience, "pwws", records=rows)
    runs = load_runs(root)
    return verdict_tables(summarize(runs), runs, options)


def test_more_robust_setting(tmp_path, make_run):
    verdict, candidates = _verdict(tmp_path, make_run, {2: records(WRONG, set(range(0, N, 4)))})
    row = verdict.iloc[0]
    assert (row["model"], row["baseline"], row["setting"], row["n"]) == ("pabee", "base", "patience:2", N)
    assert row["eligible"] and row["verdict"] == "more_robust"
    assert row["clean_accuracy"] == row["baseline_clean_accuracy"] == 0.9
    assert row["accuracy_under_attack"] > row["baseline_accuracy_under_attack"]
    assert row["p_adjusted"] == row["p_value"] < 1e-6  # a single test: Holm changes nothing
    assert len(candidates) == 1
    lines = verdict_findings(verdict)
    assert lines[0].startswith("Verdict (endpoint: accuracy under attack") and "more robust in 1," in lines[0]
    assert "pwws on sst2, pabee vs base: more robust at patience:2" in lines[1]
    assert "measured on the attacked sample" in lines[1]


def test_constant_classifier_is_never_eligible(tmp_path, make_run):
    # Always "0": the attack cannot flip the negatives, so its accuracy under attack beats the baseline's.
    verdict, candidates = _verdict(tmp_path, make_run, {1: records(set(), set(), constant=0)})
    assert verdict.iloc[0]["verdict"] == "no_eligible_setting" and not verdict.iloc[0]["eligible"]
    assert "degenerate" in verdict.iloc[0]["reason_ineligible"]
    assert candidates.iloc[0]["accuracy_under_attack"] > candidates.iloc[0]["baseline_accuracy_under_attack"]
    assert "no verdict, no eligible setting (patience:1: degenerate" in verdict_findings(verdict)[1]


def test_clean_accuracy_below_the_margin_is_ineligible(tmp_path, make_run):
    worse = WRONG | {1, 3, 5, 7, 9, 11}  # 3 points lower: 87%
    slightly = WRONG | {5}  # 0.5 points lower: within the 1-point margin
    verdict, candidates = _verdict(tmp_path, make_run, {1: records(worse, set(range(0, N, 4))),
                                                        2: records(slightly, set(range(0, N, 4)))})
    by_setting = candidates.set_index("setting")
    assert by_setting.loc["patience:1", "clean_accuracy"] == pytest.approx(0.87)
    assert not by_setting.loc["patience:1", "eligible"]
    assert "3.0 points below the baseline" in by_setting.loc["patience:1", "reason_ineligible"]
    assert by_setting.loc["patience:2", "eligible"]
    assert verdict.iloc[0]["setting"] == "patience:2"


def test_picking_the_best_of_five_settings_adjusts_p(tmp_path, make_run):
    right = sorted(set(range(N)) - WRONG)
    flipped = {p: set(right[:k]) for p, k in zip((1, 2, 3, 4, None), (100, 90, 80, 70, 60), strict=True)}
    settings = {p: records(WRONG, f) for p, f in flipped.items()}
    verdict, candidates = _verdict(tmp_path, make_run, settings)
    assert candidates["p_adjusted"].notna().sum() == 5
    expected = multipletests(list(candidates["p_value"]), method="holm")[1]
    assert list(candidates["p_adjusted"]) == pytest.approx(list(expected))
    best = verdict.iloc[0]
    assert best["setting"] == "full"  # fewest flips: highest accuracy under attack
    assert best["p_adjusted"] > best["p_value"]
    # Pre-registered: only that setting is confirmatory, nothing to adjust it for; the other four are an
    # exploratory family of their own, Holm-adjusted among themselves, that never decides the verdict.
    fixed, fixed_candidates = verdict_tables(*_runs_summary(tmp_path), VerdictOptions(setting="patience:1"))
    assert fixed.iloc[0]["setting"] == "patience:1"
    assert fixed.iloc[0]["p_adjusted"] == fixed.iloc[0]["p_value"]
    roles = fixed_candidates.set_index("setting")["role"]
    assert roles["patience:1"] == "confirmatory" and (roles.drop("patience:1") == "exploratory").all()
    explored = fixed_candidates[fixed_candidates["role"] == "exploratory"]
    assert list(explored["p_adjusted"]) == pytest.approx(
        list(multipletests(list(explored["p_value"]), method="holm")[1]))
    assert fixed.iloc[0]["p_value"] == fixed_candidates.set_index("setting").loc["patience:1", "p_adjusted"]
    missing, _ = verdict_tables(*_runs_summary(tmp_path), VerdictOptions(setting="patience:9"))
    assert missing.iloc[0]["verdict"] == "no_eligible_setting"
    assert "patience:9 was not run" in missing.iloc[0]["reason_ineligible"]


def _runs_summary(tmp_path):
    runs = load_runs(tmp_path / "suite")
    return summarize(runs), runs


def test_too_few_examples_give_insufficient_n(tmp_path, make_run):
    verdict, _ = _verdict(tmp_path, make_run, {2: records(WRONG, set(range(0, N, 4)))}, VerdictOptions(min_n=201))
    row = verdict.iloc[0]
    assert row["verdict"] == "insufficient_n" and row["n"] == N and row["p_value"] != row["p_value"]
    assert "no verdict, too few examples at patience:2" in verdict_findings(verdict, VerdictOptions(min_n=201))[1]


def test_clean_table_off_the_sample_decides_eligibility(tmp_path, make_run):
    import pandas as pd

    root = tmp_path / "suite"
    _verdict(tmp_path, make_run, {2: records(WRONG, set(range(0, N, 4)))})
    runs = load_runs(root)
    clean = pd.DataFrame([["base", "full", 500, 0.90, 0.88, 0.51], ["pabee", "patience:2", 500, 0.85, 0.8, 0.55]],
                         columns=["model_id", "setting", "n", "accuracy", "min_class_recall", "max_pred_share"])
    verdict, _ = verdict_tables(summarize(runs), runs, clean=clean)
    assert verdict.iloc[0]["verdict"] == "no_eligible_setting"
    assert "5.0 points below" in verdict.iloc[0]["reason_ineligible"]


@pytest.mark.parametrize(("accuracy", "base_accuracy", "margin", "eligible", "reason"), [
    (0.89, 0.90, 0.01, True, ""),  # exactly at the margin: eligible, as the select rule would choose it
    (0.495, 0.545, 0.05, True, ""),  # at the margin, though 0.545 - 0.05 == 0.49500000000000005 in floats
    (0.8899, 0.90, 0.01, False, "clean accuracy 1.0 points below the baseline (margin 1)"),  # just below
    (math.nan, 0.90, 0.01, False, "clean accuracy unknown"),  # unknown: never eligible
    (0.90, math.nan, 0.01, False, "baseline clean accuracy unknown"),
])
def test_clean_margin_boundary_and_unknown_accuracy(tmp_path, make_run, accuracy, base_accuracy, margin, eligible,
                                                    reason):
    _verdict(tmp_path, make_run, {2: records(WRONG, set(range(0, N, 4)))})
    runs = load_runs(tmp_path / "suite")
    clean = pd.DataFrame([["base", "full", 500, base_accuracy, 0.88, 0.51],
                          ["pabee", "patience:2", 500, accuracy, 0.8, 0.55]],
                         columns=["model_id", "setting", "n", "accuracy", "min_class_recall", "max_pred_share"])
    options = VerdictOptions(margin=margin)
    verdict, candidates = verdict_tables(summarize(runs), runs, options, clean=clean)
    row = candidates.iloc[0]
    assert row["eligible"] == eligible and row["reason_ineligible"] == reason
    assert verdict.iloc[0]["verdict"] == ("more_robust" if eligible else "no_eligible_setting")
    # the select rule makes the same comparison on the same table: it chooses patience:2 exactly when eligible
    selected, _ = verdict_tables(summarize(runs), runs, VerdictOptions(margin=margin, select=RULE), clean=clean)
    assert (selected.iloc[0]["setting"] == "patience:2") == eligible
    assert selected.iloc[0]["verdict"] == verdict.iloc[0]["verdict"]


def test_mcnemar_direction_matches_the_accuracies():
    test = mcnemar_exact([True] * 10 + [False] * 10, [False] * 20)
    assert test.only_a == 10 and test.p_value < 0.01


def test_options_are_validated():
    with pytest.raises(ValueError, match="margin"):
        VerdictOptions(margin=5)
    with pytest.raises(ValueError, match="min_n"):
        VerdictOptions(min_n=0)


def test_clean_table_is_used_only_with_the_baseline_in_it(tmp_path, make_run):
    import pandas as pd

    from robustness.analysis.clean_tables import find_clean_tables

    root = tmp_path / "suite"
    _verdict(tmp_path, make_run, {2: records(WRONG, set(range(0, N, 4)))})
    runs = load_runs(root)
    only_model = pd.DataFrame([["pabee", "patience:2", 500, 0.5, 0.4, 0.6]],
                              columns=["model_id", "setting", "n", "accuracy", "min_class_recall", "max_pred_share"])
    verdict, _ = verdict_tables(summarize(runs), runs, clean=only_model)
    row = verdict.iloc[0]  # no baseline row: both measured on the attacked sample, never one of each
    assert row["clean_accuracy"] == 0.9 and not row["clean_off_sample"] and row["verdict"] == "more_robust"
    both = pd.concat([only_model.assign(accuracy=0.895), pd.DataFrame(
        [["base", "full", 500, 0.9, 0.85, 0.55]], columns=only_model.columns)], ignore_index=True)
    (root / "clean").mkdir()
    both.to_csv(root / "clean" / "all.csv", index=False)
    found = find_clean_tables(root / "runs")  # the clean/ folder beside runs/
    verdict, _ = verdict_tables(summarize(runs), runs, clean=found)
    row = verdict.iloc[0]
    assert row["clean_accuracy"] == 0.895 and row["clean_off_sample"] and row["verdict"] == "more_robust"
    assert "measured on the attacked sample" not in verdict_findings(verdict)[1]


def test_no_baseline_means_no_verdict(tmp_path, make_run):
    root = tmp_path / "suite"
    make_run(root, "pabee", "pabee", 2, "pwws", records=records(WRONG, set()))
    runs = load_runs(root)
    verdict, candidates = verdict_tables(summarize(runs), runs)
    assert verdict.empty and list(verdict.columns)[:5] == ["dataset", "recipe", "model", "baseline", "setting"]
    assert verdict_findings(verdict)[0].startswith("No verdict: the runs hold no early-exit model with a full-depth")


def test_stock_runs_are_compared_with_stock_baselines(tmp_path, make_run):
    root = tmp_path / "suite"
    for stock in (False, True):
        make_run(root, "base", "full", None, "pwws", records=records(WRONG, BASE_FLIPPED), stock=stock)
        make_run(root, "pabee", "pabee", 2, "pwws", records=records(WRONG, set(range(0, N, 4))), stock=stock)
    runs = load_runs(root)
    verdict, _ = verdict_tables(summarize(runs), runs)
    assert sorted(verdict["recipe"]) == ["pwws", "pwws (stock)"] and set(verdict["verdict"]) == {"more_robust"}
    assert set(verdict["p_adjusted"]) != set(verdict["p_value"])  # two tests: Holm doubles the smaller p


def test_exploratory_comparisons_never_decide_the_verdict(tmp_path, make_run):
    # Pre-registered patience:1 is 3 points below the baseline (ineligible): no verdict, even though the
    # exploratory patience:2 is far more robust; patience:2's test is reported in the exploratory family.
    worse = WRONG | {1, 3, 5, 7, 9, 11}
    verdict, candidates = _verdict(tmp_path, make_run, {1: records(worse, set(range(0, N, 4))),
                                                        2: records(WRONG, set(range(0, N, 4)))},
                                   VerdictOptions(setting="patience:1"))
    row = verdict.iloc[0]
    assert row["verdict"] == "no_eligible_setting" and row["p_adjusted"] != row["p_adjusted"]  # NaN: no test
    by_setting = candidates.set_index("setting")
    assert by_setting.loc["patience:1", "role"] == "exploratory"  # ineligible: tested, but only exploratory
    assert by_setting.loc["patience:2", "role"] == "exploratory" and by_setting.loc["patience:2", "eligible"]
    assert by_setting.loc["patience:2", "p_adjusted"] < 1e-6
    lines = exploratory_finding(candidates, VerdictOptions(setting="patience:1"))
    assert lines == ["Exploratory (every comparison outside the verdict; Holm-adjusted over its 2 tests, never "
                     "the verdict): more robust in 2, less robust in 0, equivalent within ±5 points in 0, "
                     "inconclusive in 0 (tables/verdict_candidates.csv)."]
    # Without pre-registration the eligible patience:2 is confirmatory and decides; patience:1 stays exploratory.
    plain_verdict, plain = verdict_tables(*_runs_summary(tmp_path))
    assert dict(zip(plain["setting"], plain["role"], strict=True)) == {"patience:1": "exploratory",
                                                                       "patience:2": "confirmatory"}
    assert plain_verdict.iloc[0]["setting"] == "patience:2" and plain_verdict.iloc[0]["verdict"] == "more_robust"
    assert len(exploratory_finding(plain)) == 1


def test_clean_tables_of_several_suites_merge_and_conflicts_are_refused(tmp_path):
    import pandas as pd

    from robustness.analysis.clean_tables import find_clean_tables

    columns = ["model_id", "setting", "n", "accuracy", "min_class_recall", "max_pred_share", "excluded_sample"]
    rows = [["pabee", "patience:2", 372, 0.88, 0.85, 0.51, "validation n=500 seed=0"],
            ["base", "full", 372, 0.88, 0.86, 0.50, "validation n=500 seed=0"]]
    for suite in ("a", "b"):  # two suites of one study: the same clean evaluation twice
        (tmp_path / suite / "clean").mkdir(parents=True)
        pd.DataFrame(rows, columns=columns).to_csv(tmp_path / suite / "clean" / "all.csv", index=False)
    found = find_clean_tables([tmp_path / "a" / "runs", tmp_path / "b" / "runs"])
    assert found.values.tolist() == rows
    (tmp_path / "c" / "clean").mkdir(parents=True)  # another sample: another measurement of the same setting
    other = [["pabee", "patience:2", 400, 0.90, 0.85, 0.51, "validation n=472 seed=1"]]
    pd.DataFrame(other, columns=columns).to_csv(tmp_path / "c" / "clean" / "all.csv", index=False)
    with pytest.raises(ValueError, match=r"disagree on pabee patience:2: .*a/clean/all.csv vs .*c/clean/all.csv"):
        find_clean_tables([tmp_path / "a", tmp_path / "c"])


def _connor_mdd(n: int, psi: float, alpha: float = 0.05) -> float:
    """Connor's (1987) McNemar sample size n = (za sqrt(psi) + zb sqrt(psi - d^2))^2 / d^2 solved for d in closed
    form (the larger root of (n + zb^2) d^2 - 2 za sqrt(n psi) d + (za^2 - zb^2) psi = 0), 80% power."""
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(0.80)
    disc = 4 * za ** 2 * n * psi - 4 * (n + zb ** 2) * (za ** 2 - zb ** 2) * psi
    return (2 * za * math.sqrt(n * psi) + math.sqrt(disc)) / (2 * (n + zb ** 2))


def _paired(n: int, only_setting: int, only_base: int) -> tuple[list[dict], list[dict]]:
    """Baseline and setting records on ``n`` examples (every 10th clean-wrong for both): the attack flips half
    of the right ones on the baseline; the setting keeps ``only_setting`` of those and loses ``only_base`` that
    the baseline keeps (the discordant pairs of the McNemar table)."""
    wrong = set(range(0, n, 10))
    right = sorted(set(range(n)) - wrong)
    half = len(right) // 2
    base_flipped = set(right[:half])
    flipped = (base_flipped - set(right[:only_setting])) | set(right[half:half + only_base])
    return records(wrong, base_flipped, n=n), records(wrong, flipped, n=n)


@pytest.mark.parametrize(("n", "only_setting", "only_base", "outcome", "said"), [
    (200, 40, 2, "more_robust", "more robust at patience:2 ("),  # clearly better
    (200, 2, 40, "less_robust", "less robust at patience:2 ("),  # clearly worse
    (2000, 20, 20, "equivalent", "equivalent within ±5 points at patience:2 ("),  # same accuracy, large n
    (120, 8, 3, "inconclusive", "inconclusive at patience:2, neither a difference nor equivalence within ±5 points "
                                "is shown ("),  # +4.2 points at n = 120
])
def test_each_outcome_and_its_sentence(tmp_path, make_run, n, only_setting, only_base, outcome, said):
    base, setting = _paired(n, only_setting, only_base)
    verdict, _ = _verdict(tmp_path, make_run, {2: setting}, base=base)
    row = verdict.iloc[0]
    assert list(verdict.columns[:len(COLUMNS)]) == COLUMNS and row["verdict"] == outcome and outcome in VERDICTS
    difference = (only_setting - only_base) / n
    assert row["accuracy_under_attack"] - row["baseline_accuracy_under_attack"] == pytest.approx(difference)
    assert row["ci_low"] < difference < row["ci_high"]
    assert row["mdd"] == pytest.approx(_connor_mdd(n, (only_setting + only_base) / n), rel=1e-8)
    line = verdict_findings(verdict)[1]
    assert line.startswith(f"pwws on sst2, pabee vs base: {said}"), line
    assert f"minimum detectable difference at 80% power {100 * row['mdd']:.1f} points" in line
    assert f"difference {100 * difference:+.1f} points, 90% CI [{100 * row['ci_low']:+.1f}, " in line
    assert f"equivalent in {int(outcome == 'equivalent')}, inconclusive in {int(outcome == 'inconclusive')}" \
        in verdict_findings(verdict)[0]
    if outcome == "equivalent":
        assert -0.05 < row["ci_low"] and row["ci_high"] < 0.05 and row["tost_p_adjusted"] < 0.05
        assert row["p_value"] == 1.0  # 20 vs 20 discordant pairs: no difference at all
    if outcome == "inconclusive":
        assert row["p_adjusted"] >= 0.05 and row["tost_p_adjusted"] >= 0.05 and row["ci_high"] > 0.05


def test_equivalence_margin_decides_equivalence(tmp_path, make_run):
    base, setting = _paired(2000, 20, 20)  # the 90% interval is about +-0.5 points: equivalent within 5 points ...
    verdict, _ = _verdict(tmp_path, make_run, {2: setting}, VerdictOptions(equivalence_margin=0.003), base=base)
    assert verdict.iloc[0]["verdict"] == "inconclusive"  # ... not within 0.3
    assert "within ±0.3 points" in verdict_findings(verdict, VerdictOptions(equivalence_margin=0.003))[1]


def test_tost_is_holm_adjusted_over_the_same_family(tmp_path, make_run):
    base, _ = _paired(2000, 0, 0)
    settings = {p: _paired(2000, k, k)[1] for p, k in ((1, 10), (2, 30), (3, 60))}
    _, candidates = _verdict(tmp_path, make_run, settings, base=base)
    assert (candidates["role"] == "confirmatory").all()
    assert list(candidates["tost_p_adjusted"]) == pytest.approx(
        list(multipletests(list(candidates["tost_p_value"]), method="holm")[1]))


def test_equivalence_margin_is_validated(tmp_path):
    for bad in (0, 1, 1.5, -0.1, "5%", True):
        with pytest.raises(ValueError, match=r"equivalence_margin .*must be a fraction in \(0, 1\)"):
            VerdictOptions(equivalence_margin=bad)
    with pytest.raises(ValueError, match="alpha must be in"):
        VerdictOptions(alpha=0.5)  # the TOST reads a (1 - 2 alpha) interval


def test_committed_tables_from_before_equivalence_still_render():
    # reports/v2-sst2 says no_significant_difference and has no TOST columns: read as inconclusive, untested
    from robustness.report import _verdict_view

    old = pd.read_csv(Path(__file__).parents[2] / "reports" / "v2-sst2" / "tables" / "verdict.csv")
    assert set(old["verdict"]) == {"no_significant_difference"}
    lines = verdict_findings(old)
    assert f"inconclusive in {len(old)}," in lines[0]
    assert all(" inconclusive at patience:2" in line and "equivalence not tested" in line for line in lines[1:])
    view = _verdict_view(old)
    assert (view["TOST p"] == "n/a").all() and (view["MDD at 80% power (points)"] == "n/a").all()
