"""compare(), findings and the written report (Markdown + self-contained HTML) on fake runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from robustness.analysis.aggregate import load_run, load_runs, summarize
from robustness.analysis.compare import compare, findings, format_comparison, paired_test, select_run
from robustness.report import MARKER, write_report

REPO = Path(__file__).resolve().parents[2]


def test_compare_baseline_vs_p1(run_dirs):
    df = compare(run_dirs["base"], run_dirs["p1"])
    row = df.set_index("metric")
    # success: baseline 2/3, PABEE p=1 1/3
    assert row.loc["attack_success_rate", "a"] == pytest.approx(2 / 3)
    assert row.loc["attack_success_rate", "delta"] == pytest.approx(-1 / 3)
    # attacked in both: ex1 (failed, failed) and ex3 (baseline succeeded, p1 failed) -> 1 discordant, p = 1
    assert row.loc["attack_success_rate", "paired_n"] == 2 and row.loc["attack_success_rate", "only_a"] == 1
    assert row.loc["attack_success_rate", "p_value"] == 1.0
    # still correct after attack: baseline {ex1}, p1 {ex1, ex3} over all 4 shared examples
    assert (row.loc["accuracy_under_attack", "paired_n"], row.loc["accuracy_under_attack", "only_b"]) == (4, 1)
    assert df.attrs["a"] == run_dirs["base"].name
    text = format_comparison(df)
    assert text.startswith(f"a = {run_dirs['base'].name}") and "| attack_success_rate |" in text


def test_select_run(suite_out):
    runs = load_runs(suite_out)
    assert select_run(runs, "pabee", 1, recipe="textfooler").setting == "patience:1"
    assert select_run(runs, "pabee", "full", recipe="deepwordbug").setting == "full"
    assert select_run(runs, "pabee", "patience:2", recipe="deepwordbug").setting == "patience:2"
    with pytest.raises(ValueError, match="found pabee-p1_"):
        select_run(runs, "pabee", 1)  # one per recipe: ambiguous
    with pytest.raises(ValueError, match="found none"):
        select_run(runs, "pabee", 5)


def test_paired_test_rejects_different_samples(run_dirs):
    a, b = load_run(run_dirs["p1"]), load_run(run_dirs["p2"])
    b.records["dataset_index"] += 1
    with pytest.raises(ValueError, match="different examples"):
        paired_test(a, b, "attack_success_rate")
    with pytest.raises(ValueError, match="no paired test"):
        paired_test(a, a, "mean_queries")


def test_findings_are_generated_from_the_numbers(suite_out):
    runs = load_runs(suite_out)
    lines = findings(summarize(runs), runs)
    text = "\n".join(lines)
    assert "textfooler on sst2: the lowest attack success rate is 33.3% [95% CI" in text
    assert "for pabee at patience:1; the highest is 66.7%" in text
    assert "lowest-success" not in text  # the conclusion is the verdict's, not a post-hoc pick
    assert "adversarial texts exit 0.33 layers later" in text  # p=1: exits 2,3,2 vs 2,2,2
    assert "Every run has 4 examples" in text
    assert "not independent evidence" in text


@pytest.fixture(scope="module")
def report(shared_suite_out, tmp_path_factory):
    """A report written once into a folder that already holds a user file."""
    out = tmp_path_factory.mktemp("report")
    (out / "notes.txt").write_text("mine")
    md, html = write_report(shared_suite_out, out, provenance={"suite": "attacks/quickstart.toml"})
    return out, md, html


def test_write_report(report):
    out, md, html = report
    assert (out / "notes.txt").read_text() == "mine"  # nothing else is touched
    for name in ("tables/verdict.csv", "tables/verdict_candidates.csv",
                 "tables/summary.csv", "tables/summary.md", "tables/exit_distribution.csv", "tables/flip_rates.csv",
                 "figures/success_vs_setting.png", "figures/flip_heatmap.png", "figures/tradeoff.png"):
        assert (out / name).is_file(), name
    text, page = md.read_text(), html.read_text()
    assert text.startswith(MARKER) and "![success_vs_setting](figures/success_vs_setting.png)" in text
    # the summary (verdict) comes first; 4 examples per run are far below the minimum n: no verdict
    assert text.index("## Summary") < text.index("## Findings") < text.index("## Tables")
    assert text.split("## Summary")[1].split("\n- ")[1].startswith("Verdict (endpoint: accuracy under attack")
    assert "no verdict, too few examples" in text and "no verdict, too few examples" in page
    # L = 3: patience 2 exits at layer 3 like full depth, and the runs' records agree: one row, both runs kept
    assert "Every setting behind the verdict" in text and "| pabee | bert-base | full = patience:2 |  | no |" in text
    assert "Folded 2 row(s) (patience:2 into full)" in text and "| pabee | bert-base | patience:2 |" not in text
    assert set(pd.read_csv(out / "tables" / "summary.csv")["same_as"].fillna("")) == {"", "full"}
    # the unfinished run is listed, not silently dropped
    summary_part = text.split("## Summary")[1].split("## Findings")[0]
    assert "1 run(s) are not complete and are left out" in summary_part and "pabee-unfinished-p1" in summary_part
    verdict = pd.read_csv(out / "tables" / "verdict.csv")
    assert set(verdict["verdict"]) == {"insufficient_n"} and len(verdict) == 2  # pabee vs bert-base, 2 recipes
    assert page.count("data:image/png;base64,") == 6
    assert 'src="http' not in page and 'href="http' not in page and "<link" not in page and "<script" not in page
    for needle in ("Findings", "Provenance", "textattack 0.3.11", "robustness attack --model pabee",
                   "attacks/quickstart.toml", "pabee-p1_textfooler_sst2"):
        assert needle in page and needle in text


def test_write_report_refuses_foreign_report(suite_out, tmp_path):
    (tmp_path / "report.md").write_text("# my own notes\n")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        write_report(suite_out, tmp_path)
    assert (tmp_path / "report.md").read_text() == "# my own notes\n"


def test_write_report_with_incomplete_and_empty_runs(tmp_path, make_run):
    make_run(tmp_path / "suite", "pabee", "pabee", 1, "textfooler", status="running", records=[])
    with pytest.raises(ValueError, match="none of the 1 runs is complete"):
        write_report(tmp_path / "suite", tmp_path / "out")
    md, _ = write_report(tmp_path / "suite", tmp_path / "out", include_incomplete=True)
    text = md.read_text()
    assert "no example was attacked" in text and "1 run(s) are incomplete" in text
    write_report(tmp_path / "suite", tmp_path / "out", include_incomplete=True)  # overwrites its own report


@pytest.mark.skipif(not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()), reason="no chromium")
def test_report_html_renders_in_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "check_report_html.py"), str(report[2]), str(shot),
                           "--height", "1200"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_near_constant_settings_are_flagged(suite_out):
    runs = load_runs(suite_out)
    summary = summarize(runs)
    assert not any("near-constant" in line for line in findings(summary, runs))
    target = next(r for r in runs if r.setting == "patience:1")
    target.records["orig_pred"] = 1  # every clean text gets class 1
    lines = [line for line in findings(summary, runs) if "near-constant" in line]
    assert len(lines) == 1 and "predicts one class for 100.0% of the clean texts" in lines[0]


def test_report_validates_the_run_set_before_writing(suite_out, tmp_path, make_run, capsys):
    from robustness.cli import main

    make_run(suite_out, "pabee", "pabee", 3, "textfooler", seed=8)  # another sample
    out = tmp_path / "report"
    with pytest.raises(ValueError, match="runs on sst2 draw different samples"):
        write_report(suite_out, out)
    assert main(["report", str(suite_out), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "draw different samples" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing half-written


def test_stock_is_part_of_the_setting(suite_out, tmp_path, make_run):
    make_run(suite_out, "pabee", "pabee", 1, "textfooler", stock=True)
    runs = load_runs(suite_out)
    summary = summarize(runs)  # no "share a setting" error: stock and offline are two settings
    rows = summary[(summary.recipe == "textfooler") & (summary.setting == "patience:1")]
    assert sorted(rows["stock"]) == [False, True]
    make_run(suite_out / "again", "pabee", "pabee", 1, "textfooler", stock=True)
    with pytest.raises(ValueError, match="share a setting"):
        summarize(load_runs([suite_out, suite_out / "again"]))


def test_slowdown_runs_get_their_own_section_and_stay_out_of_the_verdict(tmp_path, make_run, make_records):
    runs = tmp_path / "suite"
    make_run(runs, "bert-base", "full", None, "textfooler")
    make_run(runs, "pabee", "pabee", 1, "textfooler")
    slowdown = [{**r, "goal": "slowdown", "goal_target": 3} for r in make_records(1)]
    make_run(runs, "pabee", "pabee", 1, "textfooler", records=slowdown, goal="slowdown")
    md, _ = write_report([runs], tmp_path / "out")
    text = md.read_text()
    assert "3 runs on sst2: 2 models, 1 recipe, 4 examples each." in text  # singular where one
    assert text.index("## Summary") < text.index("## Slowdown") < text.index("## Findings")
    assert "pabee at patience:1: the slowdown attack brings 33.3% of the attacked examples to layer 3" in text
    assert "leaving 66.7% of the clean efficiency gain" in text
    for name in ("figures/slowdown_exits.png", "figures/efficiency_left.png", "tables/slowdown.md",
                 "tables/efficacy.md"):
        assert (tmp_path / "out" / name).is_file(), name
    section = text[text.index("## Slowdown"):text.index("## Findings")]
    assert "split by attack outcome" in section and "| under attack, failed |" in section
    # the first screen: the efficiency-left figure comes right after the findings, before the tables
    assert section.index("leaving 66.7%") < section.index("figures/efficiency_left.png") < section.index("| model |")
    verdict = pd.read_csv(tmp_path / "out" / "tables" / "verdict.csv")
    assert len(verdict) == 1  # pabee vs bert-base on textfooler: the slowdown run is not a candidate setting
    assert len(pd.read_csv(tmp_path / "out" / "tables" / "verdict_candidates.csv")) == 1  # one candidate setting


def test_runs_written_before_settings_still_summarise(suite_out):
    import json

    for spec_path in (suite_out / "runs").glob("*/spec.json"):  # spec.json as written before settings existed
        spec = json.loads(spec_path.read_text())
        setting = spec.pop("setting")
        spec["patience"] = None if setting == "full" else int(setting.split(":")[1])
        spec_path.write_text(json.dumps(spec))
    summary = summarize(load_runs(suite_out))
    assert sorted(set(summary["setting"])) == ["full", "patience:1", "patience:2"] and len(summary) == 8


def test_summary_keeps_at_most_ten_verdict_sentences(suite_out):
    from robustness.report import MAX_SUMMARY_FINDINGS, build_sections

    runs = load_runs(suite_out)
    summary = summarize(runs)
    many = pd.concat([summary.assign(recipe=f"r{i:02d}") for i in range(12)], ignore_index=True)
    verdict = pd.DataFrame([{"dataset": "sst2", "recipe": f"r{i:02d}", "model": "pabee", "baseline": "bert-base",
                             "setting": "", "eligible": False, "reason_ineligible": "x", "n": 4,
                             "verdict": "no_eligible_setting", "p_adjusted": float("nan"), "p_value": float("nan"),
                             "clean_accuracy": 0.5, "baseline_clean_accuracy": 0.5, "accuracy_under_attack": 0.5,
                             "baseline_accuracy_under_attack": 0.5} for i in range(12)])
    sections = dict(build_sections(runs, many, [], None, verdict))
    listed = next(content for kind, content in sections["Summary"] if kind == "list")
    assert len(listed) == MAX_SUMMARY_FINDINGS and listed[-1].startswith("... and 4 more comparisons")
    table = next(content for kind, content in sections["Summary"] if kind == "table")
    assert len(table) == 12


def test_aggregate_lists_runs_it_leaves_out(suite_out, tmp_path, capsys):
    from robustness.cli import main

    assert main(["aggregate", str(suite_out), "--out", str(tmp_path / "agg")]) == 0
    out = capsys.readouterr().out
    assert "left out pabee-unfinished-p1_textfooler_sst2_" in out and "status running, 2 records" in out


def test_slowdown_finding_of_a_setting_without_gain_says_so():
    from robustness.analysis.compare import slowdown_findings

    row = {"dataset": "sst2", "recipe": "deepwordbug", "model_id": "pabee", "goal": "slowdown", "n": 500,
           "goal_target": 6, "clean_mean_exit_all": 6.0, "final_mean_exit_all": 6.0, "mean_exit_increase": 0.0,
           "slowdown_success_rate": float("nan"), "efficiency_gain_left": float("nan"), "accuracy_at_exit": 0.9}
    gain = {**row, "setting": "patience:2", "clean_mean_exit_all": 3.0, "final_mean_exit_all": 4.5,
            "mean_exit_increase": 1.5, "slowdown_success_rate": 0.5, "efficiency_gain_left": 1 / 3}
    lines = slowdown_findings(pd.DataFrame([{**row, "setting": "patience:5"}, gain]))
    assert lines[0] == ("deepwordbug on sst2, pabee at patience:5: every example exits at layer 6 or later on clean "
                        "text already (mean 6.00): there is no efficiency gain to attack.")
    assert "n/a" not in lines[0] and "leaving 33.3% of the clean efficiency gain" in lines[1]


def test_report_flag_sets_the_equivalence_margin(shared_suite_out, tmp_path):
    from robustness.cli import main

    out = tmp_path / "rep"
    assert main(["report", str(shared_suite_out), "--out", str(out), "--min-n", "2",
                 "--equivalence-margin", "0.02"]) == 0
    text = (out / "report.md").read_text()
    assert "equivalent when a paired TOST puts the difference within the pre-registered ±2 points" in text
    assert "| TOST p (Holm) |" in text and "| MDD at 80% power (points) |" in text
    verdict = pd.read_csv(out / "tables" / "verdict.csv")
    assert {"ci_low", "ci_high", "tost_p_value", "tost_p_adjusted", "mdd"} <= set(verdict.columns)
    assert set(verdict["verdict"]) <= {"more_robust", "less_robust", "equivalent", "inconclusive",
                                       "no_eligible_setting"}
