"""Strict metrics (robustness.analysis.metrics.strict_*, robustness.analysis.revalidation) on hand-made records
whose right answer is worked out below, and where they show: summary, verdict (secondary) and report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from robustness.analysis import metrics as m
from robustness.analysis.aggregate import load_runs, summarize
from robustness.analysis.revalidation import revalidation_table, strict_metrics, valid_column
from robustness.analysis.runs import load_run
from robustness.analysis.tables import view
from robustness.analysis.verdict import verdict_findings, verdict_tables
from robustness.revalidate import REVALIDATION_FILE

# Six examples, all labelled 1. e0 succeeded (valid), e1 succeeded (invalid), e2 failed, e3 skipped,
# e4 succeeded (invalid), e5 failed.
RESULTS = ["succeeded", "succeeded", "failed", "skipped", "succeeded", "failed"]
ORIG = [1, 1, 1, 0, 1, 1]
ADV = [0, 0, 1, None, 0, 1]
LABELS = [1] * 6
VALID = [True, False, None, None, False, None]
# raw: success 3/5; still correct e2, e5 -> 2/6. strict: success 1/5 (e0); still correct e1, e2, e4, e5 -> 4/6.


def test_strict_metrics_on_hand_made_records() -> None:
    assert m.attack_success_rate(RESULTS) == pytest.approx(3 / 5)
    assert m.strict_attack_success_rate(RESULTS, VALID) == pytest.approx(1 / 5)
    assert m.strict_results(RESULTS, VALID) == ["succeeded", "failed", "failed", "skipped", "failed", "failed"]
    assert m.proportion(m.still_correct(ORIG, ADV, LABELS)) == pytest.approx(2 / 6)
    strict = m.strict_still_correct(ORIG, ADV, LABELS, RESULTS, VALID)
    assert strict.tolist() == [False, True, True, False, True, True]


def test_strict_metrics_equal_raw_when_every_text_is_valid() -> None:
    every = [True if r == "succeeded" else None for r in RESULTS]
    assert m.strict_attack_success_rate(RESULTS, every) == m.attack_success_rate(RESULTS)
    assert (m.strict_still_correct(ORIG, ADV, LABELS, RESULTS, every) == m.still_correct(ORIG, ADV, LABELS)).all()


def test_a_success_not_revalidated_is_refused() -> None:
    with pytest.raises(ValueError, match="was not re-validated"):
        m.strict_attack_success_rate(RESULTS, [True, False, None, None, None, None])
    with pytest.raises(ValueError, match="differ in length"):
        m.strict_results(RESULTS, VALID[:3])


def _records() -> list[dict]:
    rows = []
    for i, (result, orig, adv) in enumerate(zip(RESULTS, ORIG, ADV, strict=True)):
        rows.append({
            "schema_version": 2, "example_id": i, "dataset_index": 100 + i, "label": 1, "result": result,
            "orig_pred": orig, "adv_pred": adv, "orig_text": f"t{i}", "adv_text": None if adv is None else f"a{i}",
            "num_queries": 4, "num_forward_passes": 4, "layers_computed": 12, "layers_encoded": 12,
            "query_mean_exit_layer": 3.0, "goal": "accuracy", "goal_target": None, "orig_exit_layer": 3,
            "adv_exit_layer": None if adv is None else 3, "orig_layer_preds": [orig] * 3,
            "adv_layer_preds": None if adv is None else [adv] * 3,
            "words_changed": 1 if result == "succeeded" else (None if adv is None else 0), "words_total": 5,
            "attack_time_s": 0.1})
    return rows


def _line(example_id: int, valid: bool, **fails: bool) -> dict:
    checks = {"word_cosine_ok": True, "pos_ok": True, "similarity_ok": True, "ppl_ratio_ok": True, **fails}
    return {"schema_version": 1, "example_id": example_id, "adv_text": f"a{example_id}", "preset": "morris2020",
            "swaps": [],
            "unaligned_words": 0, "oov_words": [], "similarity": 0.99, "orig_perplexity": 10.0,
            "adv_perplexity": 11.0, "ppl_ratio": 1.1, "valid": valid, "lm": "lm", "encoder": "enc", **checks}


def _write(run_dir, lines: list[dict]) -> None:
    (run_dir / REVALIDATION_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


LINES = [_line(0, True), _line(1, False, word_cosine_ok=False, pos_ok=False), _line(4, False, ppl_ratio_ok=False)]


def test_strict_metrics_of_a_revalidated_run(tmp_path, make_run) -> None:
    run_dir = make_run(tmp_path, "pabee", "pabee", 2, "textfooler", records=_records())
    assert math.isnan(strict_metrics(load_run(run_dir))["strict_attack_success_rate"])  # no file: undefined
    _write(run_dir, LINES[:2])  # e4 not re-validated yet: still undefined, never the raw number
    assert valid_column(load_run(run_dir)) is None
    assert math.isnan(strict_metrics(load_run(run_dir))["strict_accuracy_under_attack"])
    _write(run_dir, LINES)
    row = strict_metrics(load_run(run_dir))
    assert row["revalidation_preset"] == "morris2020" and row["revalidated"] == 3
    assert row["strict_attack_success_rate"] == pytest.approx(1 / 5)
    assert row["strict_accuracy_under_attack"] == pytest.approx(4 / 6)
    assert row["strict_attack_success_rate_ci_low"] < 0.2 < row["strict_attack_success_rate_ci_high"]
    assert (row["fail_word_cosine"], row["fail_pos"], row["fail_similarity"], row["fail_ppl_ratio"]) == \
        pytest.approx((1 / 3, 1 / 3, 0.0, 1 / 3))
    _write(run_dir, [*LINES[:2], {**LINES[2], "adv_text": "an older run's text"}])  # stale: not counted
    assert math.isnan(strict_metrics(load_run(run_dir))["strict_attack_success_rate"])


def test_summary_shows_strict_next_to_raw_only_when_revalidated(tmp_path, make_run) -> None:
    root = tmp_path / "suite"
    run_dir = make_run(root, "pabee", "pabee", 2, "textfooler", records=_records())
    make_run(root, "pabee", "pabee", 1, "textfooler", records=_records())
    summary = summarize(load_runs(root))
    assert "strict success [95% CI]" not in view(summary, "summary").columns
    assert revalidation_table(summary).empty
    _write(run_dir, LINES)
    summary = summarize(load_runs(root))
    shown = view(summary, "summary")
    headers = list(shown.columns)
    assert headers.index("strict acc under attack [95% CI]") == headers.index("acc under attack [95% CI]") + 1
    assert headers.index("strict success [95% CI]") == headers.index("success rate [95% CI]") + 1
    assert sorted(shown["strict success [95% CI]"].str[:5]) == ["0.200", "n/a"]
    table = revalidation_table(summary)
    assert len(table) == 1 and table.iloc[0]["attack_success_rate"] == pytest.approx(0.6)


N = 200


def _paired(flipped: set[int], invalid: set[int]) -> tuple[list[dict], list[dict]]:
    """N correct examples (label 1); the attack flips ``flipped``; the texts of ``invalid`` fail re-validation."""
    rows, lines = [], []
    for i in range(N):
        won = i in flipped
        rows.append({**_records()[0], "example_id": i, "dataset_index": 1000 + i, "orig_pred": 1,
                     "result": "succeeded" if won else "failed", "adv_pred": 0 if won else 1,
                     "adv_layer_preds": [0 if won else 1] * 3, "orig_layer_preds": [1] * 3, "orig_text": f"t{i}",
                     "adv_text": f"a{i}", "label": 1})
        if won:
            lines.append(_line(i, i not in invalid, similarity_ok=i not in invalid))
    return rows, lines


def test_verdict_reports_the_strict_endpoint_as_a_secondary(tmp_path, make_run) -> None:
    root = tmp_path / "suite"
    flipped = set(range(0, N, 2))  # both lose half their examples to the attack ...
    base_rows, base_lines = _paired(flipped, invalid=set())  # ... the baseline's texts are all valid,
    rows, lines = _paired(flipped, invalid=flipped)  # the early-exit model's all invalid
    for i in range(0, N, 2):  # clean predictions must vary for eligibility: half the labels are 0
        for r in (base_rows[i + 1], rows[i + 1]):
            r.update(label=0, orig_pred=0, adv_pred=0, orig_layer_preds=[0] * 3, adv_layer_preds=[0] * 3)
    base_dir = make_run(root, "base", "full", None, "pwws", records=base_rows)
    run_dir = make_run(root, "pabee", "pabee", 2, "pwws", records=rows)
    runs = load_runs(root)
    verdict, _ = verdict_tables(summarize(runs), runs)
    assert np.isnan(verdict.iloc[0]["strict_accuracy_under_attack"])  # not re-validated: no secondary
    assert "secondary" not in " ".join(verdict_findings(verdict))
    _write(base_dir, base_lines)
    _write(run_dir, lines)
    runs = load_runs(root)
    verdict, candidates = verdict_tables(summarize(runs), runs)
    row = verdict.iloc[0]
    assert row["verdict"] == "equivalent"  # the pre-registered endpoint is unchanged: 0.5 vs 0.5 on every example
    assert row["accuracy_under_attack"] == row["baseline_accuracy_under_attack"] == 0.5
    assert row["strict_accuracy_under_attack"] == 1.0 and row["baseline_strict_accuracy_under_attack"] == 0.5
    assert row["strict_p_value"] < 1e-6
    assert "secondary, never the verdict: strict accuracy under attack" in verdict_findings(verdict)[1]


def test_report_has_a_strict_section(tmp_path, make_run) -> None:
    from robustness.report import write_report

    root = tmp_path / "suite"
    make_run(root, "base", "full", None, "textfooler", records=_records())
    _write(make_run(root, "pabee", "pabee", 2, "textfooler", records=_records()), LINES)
    md, _ = write_report([root], tmp_path / "report")
    text = md.read_text()
    assert "## Strict re-validation" in text and "LanguageTool" in text
    assert "under strict re-validation (morris2020) the attack success rate is 20.0% instead of 60.0%" in text
    assert (tmp_path / "report" / "tables" / "revalidation.csv").is_file()
