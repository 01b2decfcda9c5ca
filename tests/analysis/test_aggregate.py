"""Loading fake run directories and summarising them; expected numbers worked out in the comments."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from robustness.analysis.aggregate import (
    KEY,
    exit_table,
    find_runs,
    flip_table,
    load_run,
    load_runs,
    markdown_table,
    summarize,
    write_tables,
)
from robustness.suite.specs import parse_setting


def _row(summary: pd.DataFrame, model: str, setting: str, recipe: str = "textfooler") -> pd.Series:
    label = parse_setting(setting).label
    rows = summary[(summary.model_id == model) & (summary.setting == label) & (summary.recipe == recipe)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_load_run(run_dirs):
    run = load_run(run_dirs["p1"])
    assert run.complete and run.num_layers == 3 and run.setting == "patience:1"
    assert list(run.records["result"]) == ["succeeded", "failed", "skipped", "failed"]


def test_find_runs_accepts_suite_runs_and_run_dirs(suite_out, run_dirs):
    assert len(find_runs(suite_out)) == 9
    assert find_runs(suite_out / "runs") == find_runs([suite_out])
    assert find_runs([run_dirs["p1"], run_dirs["p1"]]) == [run_dirs["p1"].resolve()]


def test_invalid_dirs(tmp_path):
    with pytest.raises(ValueError, match="no run directories"):
        find_runs(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        find_runs(tmp_path / "missing")
    (tmp_path / "spec.json").write_text(json.dumps({"model_id": "x"}))
    with pytest.raises(ValueError, match="missing run.json"):
        load_run(tmp_path)


def test_incomplete_runs_dropped_unless_asked(suite_out):
    assert len(load_runs(suite_out)) == 8
    runs = load_runs(suite_out, include_incomplete=True)
    summary = summarize(runs)
    assert len(summary) == 9 and (~summary["complete"]).sum() == 1
    assert _row(summary, "pabee-unfinished", "1")["n"] == 2


def test_summary_rows_and_values(suite_out):
    summary = summarize(load_runs(suite_out))
    assert len(summary) == 8 and not summary.duplicated(KEY).any()
    for column in ("attack_success_rate_ci_low", "attack_success_rate_ci_high", "mean_queries", "adv_efficacy",
                   "clean_destructive", "rescued_rate", "num_layers", "n", "exit_shift", "wall_time_s"):
        assert column in summary.columns
    # baselines come first, full depth last
    assert list(summary[summary.recipe == "textfooler"].setting) == ["full", "patience:1", "patience:2", "full"]
    p1 = _row(summary, "pabee", "1")
    # results: succeeded, failed, skipped, failed
    assert (p1.n, p1.succeeded, p1.failed, p1.skipped, p1.num_layers) == (4, 1, 2, 1, 3)
    assert p1.original_accuracy == 0.75 and p1.accuracy_under_attack == 0.5
    assert p1.attack_success_rate == pytest.approx(1 / 3)
    assert p1.attack_success_rate_ci_low <= 1 / 3 <= p1.attack_success_rate_ci_high
    assert p1.mean_queries == 12  # (10 + 20 + 6) / 3 attacked
    assert p1.mean_forward_passes == 6 and p1.mean_layers_encoded == 18  # (15 + 30 + 9) / 3, L = 3 per pass
    assert p1.mean_layers_computed == 12 and p1.mean_query_exit_layer == 2  # deployed: exit layer 2 per pass
    assert p1.words_perturbed == pytest.approx(0.2)  # only ex0 succeeded: 1/5
    # clean exits [2,2,2,2]; adversarial exits of the attacked examples [2,3,2]
    assert p1.orig_mean_exit_layer == 2 and p1.orig_speedup == 1.5 and p1.orig_efficacy == 0.5
    assert p1.adv_mean_exit_layer == pytest.approx(7 / 3) and p1.exit_shift == pytest.approx(1 / 3)
    assert p1.adv_efficacy == pytest.approx(1 / 3)
    # Kaya et al.: clean ex0 right at layer 1, wrong at L (destructive; the only last-layer error); ex0, ex1, ex3
    # are first right at an internal layer (wasteful); ex2 only at L.
    assert (p1.clean_destructive, p1.clean_destructive_of_wrong, p1.clean_wasteful) == (0.25, 1.0, 0.75)
    # adversarial texts of ex0, ex1, ex3: [0,0,1] y=1 (right only at L), [1,0,0] y=0, [0,0,1] y=0 (destructive)
    assert p1.adv_destructive == pytest.approx(1 / 3) and p1.adv_destructive_of_wrong == 1.0
    assert p1.adv_wasteful == pytest.approx(2 / 3)
    assert p1.rescued_rate == pytest.approx(1 / 3) and p1.hurt_rate == pytest.approx(1 / 3)
    full = _row(summary, "pabee", "full")
    # full depth: ex0 skipped (last layer wrong), ex1 failed, ex2 and ex3 succeeded
    assert full.attack_success_rate == pytest.approx(2 / 3) and full.accuracy_under_attack == 0.25
    assert full.words_perturbed == pytest.approx(0.375)  # (3/6 + 1/4) / 2
    assert full.orig_efficacy == 0 and full.exit_shift == 0 and full.rescued_rate == 0
    assert full.adv_destructive == pytest.approx(2 / 3)
    base = _row(summary, "bert-base", "full")
    assert base.attack_success_rate == pytest.approx(2 / 3) and base["head"] == "full"
    assert math.isnan(base.clean_destructive) and math.isnan(base.rescued_rate)
    assert base.setting == "full"


def test_duplicate_settings_rejected(suite_out, run_dirs, make_run):
    make_run(suite_out / "again", "pabee", "pabee", 1, "textfooler")
    runs = load_runs([suite_out / "again", run_dirs["p1"]])
    with pytest.raises(ValueError, match="share a setting"):
        summarize(runs)


def test_exit_and_flip_tables(run_dirs):
    runs = [load_run(run_dirs["p1"]), load_run(run_dirs["base"])]
    exits = exit_table(runs)
    p1 = exits[exits.run_id == runs[0].run_id]
    assert list(p1.clean_frac) == [0, 1, 0]
    assert list(p1.adv_frac) == pytest.approx([0, 2 / 3, 1 / 3])
    flips = flip_table(runs)
    assert list(flips[flips.run_id == runs[0].run_id].flip_rate) == pytest.approx([2 / 3, 1 / 3, 2 / 3])
    base = flips[flips.run_id == runs[1].run_id]
    assert list(base.layer) == [3] and list(base.flip_rate) == pytest.approx([2 / 3])


def test_write_tables(suite_out, tmp_path):
    runs = load_runs(suite_out)
    summary = summarize(runs)
    written = write_tables(summary, tmp_path, extra={"exit_distribution": exit_table(runs)})
    for name in ("summary.csv", "summary.md", "exits.md", "overthinking.md", "exit_distribution.csv"):
        assert written[name].is_file() and written[name].parent == tmp_path / "tables"
    back = pd.read_csv(written["summary.csv"])
    assert back.loc[back.run_id == _row(summary, "pabee", "1").run_id, "attack_success_rate"].item() == 1 / 3
    md = written["summary.md"].read_text()
    assert "0.333 [" in md and "| full |" in md and "0.3333" not in md
    assert "n/a" in written["overthinking.md"].read_text()
    with pytest.raises(ValueError, match="empty"):
        write_tables(summary.iloc[:0], tmp_path)


def test_markdown_table_escapes_pipes():
    text = markdown_table(pd.DataFrame({"a": ["x|y"], "b": [0.5]}))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 0.500 |"]


def test_v1_runs_have_unknown_deployed_cost(tmp_path, make_run):
    v2_dir = make_run(tmp_path / "v2", "pabee", "pabee", 1, "textfooler")
    v1 = []
    for line in (v2_dir / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        for name in ("layers_computed", "query_mean_exit_layer", "goal", "goal_target"):
            del record[name]
        record["layers_computed"] = record.pop("layers_encoded")  # v1's layers_computed was the encoded cost
        v1.append({**record, "schema_version": 1})
    row = summarize([load_run(make_run(tmp_path / "v1", "pabee", "pabee", 1, "textfooler", records=v1))]).iloc[0]
    assert row.mean_layers_encoded == 18
    assert math.isnan(row.mean_layers_computed) and math.isnan(row.mean_query_exit_layer)  # unknown, never 0


def test_slowdown_runs_are_their_own_rows_with_hand_checked_metrics(tmp_path, make_run, make_records):
    make_run(tmp_path, "pabee", "pabee", 1, "textfooler")
    slowdown = [{**r, "goal": "slowdown", "goal_target": 3} for r in make_records(1)]
    make_run(tmp_path, "pabee", "pabee", 1, "textfooler", records=slowdown, goal="slowdown")
    summary = summarize(load_runs([tmp_path]))
    assert list(summary["goal"]) == ["accuracy", "slowdown"]
    slow = summary[summary["goal"] == "slowdown"].iloc[0]
    # p=1 (L = 3): clean exits 2,2,2,2; attacked ex0, ex1, ex3 reach 2, 3, 2; ex2 skipped keeps 2
    assert slow.goal_target == 3 and slow.slowdown_success_rate == pytest.approx(1 / 3)
    assert slow.clean_mean_exit_all == 2 and slow.final_mean_exit_all == 2.25 and slow.mean_exit_increase == 0.25
    assert slow.efficiency_gain_left == pytest.approx((3 / 2.25 - 1) / (3 / 2 - 1))  # 2/3
    assert slow.accuracy_at_exit == pytest.approx(summary.iloc[0].accuracy_at_exit)  # same records, same finals
    # efficacy = (3 − mean exit) / 2: clean 2,2,2,2 -> 0.5 everywhere; finals: succeeded ex0 at 2 (0.5), failed
    # ex1, ex3 at 3, 2 (0.25), skipped ex2 keeps 2 (0.5); all four 2,3,2,2 -> 0.375
    for outcome, final in (("all", 0.375), ("succeeded", 0.5), ("failed", 0.25), ("skipped", 0.5)):
        assert slow[f"clean_efficacy_{outcome}"] == 0.5 and slow[f"final_efficacy_{outcome}"] == final, outcome
    assert slow.slowdown_score == "exit" and pd.isna(summary.iloc[0].slowdown_score)  # none for accuracy runs


def test_slowdown_runs_of_two_scores_are_two_rows(tmp_path, make_run, make_records):
    slowdown = [{**r, "goal": "slowdown", "goal_target": 3} for r in make_records(1)]
    for score in ("exit", "waffle"):
        run_dir = make_run(tmp_path, "pabee", "pabee", 1, "textfooler", records=slowdown, goal="slowdown",
                           slowdown_score=score)
        if score == "exit":  # a spec.json written before slowdown scores existed reads as exit
            spec = json.loads((run_dir / "spec.json").read_text())
            del spec["slowdown_score"]
            (run_dir / "spec.json").write_text(json.dumps(spec))
    runs = load_runs([tmp_path])
    summary = summarize(runs)  # not refused as "several runs share a setting"
    assert list(summary["slowdown_score"]) == ["exit", "waffle"]
    assert sorted(r.label for r in runs) == ["pabee patience:1 textfooler slowdown",
                                             "pabee patience:1 textfooler slowdown (waffle)"]
