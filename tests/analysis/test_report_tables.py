"""A committed report refreshed from its tables alone (robustness.report_tables): folded like a report written
from the runs, figures redrawn, nothing else of the text touched."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

import robustness.report as report_module
from robustness.analysis.aggregate import summarize
from robustness.analysis.equivalence import fold_equivalent
from robustness.report import write_report
from robustness.report_tables import fold_html, fold_markdown, read_summary, refresh_from_tables


def _tables(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_refresh_folds_an_old_report_like_a_new_one(shared_suite_out, tmp_path, monkeypatch):
    new = tmp_path / "new"
    write_report(shared_suite_out, new)
    old = tmp_path / "old"  # what a report looked like before folding: same runs, nothing folded
    monkeypatch.setattr(report_module, "summarize", lambda runs: summarize(runs).drop(columns="same_as"))
    write_report(shared_suite_out, old)
    monkeypatch.undo()
    old_md = (old / "report.md").read_text()
    assert "| pabee | bert-base | patience:2 |" in old_md and "Folded" not in old_md
    before = {p.name: p.read_bytes() for p in (old / "figures").glob("*.png")}

    result = refresh_from_tables(old)
    assert result["not_found"] == []
    md, new_md = (old / "report.md").read_text(), (new / "report.md").read_text()
    assert md.count("Folded 2 row(s) (patience:2 into full)") == 1
    # every table row the runs-built report shows, the refreshed one shows (findings text is left alone)
    assert _tables(md) == _tables(new_md)
    page, new_page = (old / "report.html").read_text(), (new / "report.html").read_text()
    rows = re.compile(r"<tr>.*?</tr>", re.S)
    assert rows.findall(page) == rows.findall(new_page)
    assert {p.name: p.read_bytes() for p in (old / "figures").glob("*.png")} != before  # redrawn
    assert page.count("data:image/png;base64,") == new_page.count("data:image/png;base64,")
    summary = pd.read_csv(old / "tables" / "summary.csv")
    assert len(summary) == len(pd.read_csv(new / "tables" / "summary.csv"))  # both runs kept
    assert sorted(summary["same_as"].fillna("")) == sorted(["full", "full"] + [""] * (len(summary) - 2))
    assert (old / "tables" / "summary.md").read_text() == (new / "tables" / "summary.md").read_text()
    # refreshing again changes no table
    refresh_from_tables(old)
    assert _tables((old / "report.md").read_text()) == _tables(md)


def test_first_wave_tables(tmp_path):
    pd.DataFrame({"model_id": ["m", "m"], "head": ["pabee"] * 2, "patience": [2.0, None], "recipe": ["r"] * 2,
                  "dataset": ["d"] * 2, "num_layers": [3, 3], "n": [4, 4], "run_id": ["a", "b"],
                  "accuracy_under_attack": [0.5, 0.5]}).to_csv(tmp_path / "summary.csv", index=False)
    summary = read_summary(tmp_path / "summary.csv")
    assert list(summary["setting"]) == ["patience:2", "full"] and set(summary["goal"]) == {"accuracy"}
    folded = fold_equivalent(summary)
    assert list(folded["same_as"]) == ["full", ""]
    fold = ({("d", "r", "m", "accuracy", "patience:2"): "full"}, {})
    text = ("| model | patience | recipe | dataset | n |\n|---|---|---|---|---|\n| m | 2 | r | d | 4 |\n"
            "| m | full | r | d | 4 |\n")
    assert fold_markdown(text, fold) == ("| model | patience | recipe | dataset | n |\n|---|---|---|---|---|\n"
                                         "| m | full = patience:2 | r | d | 4 |\n")
    html = ('<table><thead><tr><th>model</th><th>setting</th><th>recipe</th><th>dataset</th></tr></thead><tbody>'
            '<tr><td>m</td><td>patience:2</td><td>r</td><td>d</td></tr>'
            '<tr><td>m</td><td>full</td><td>r</td><td>d</td></tr></tbody></table>')
    assert fold_html(html, fold).count("<tr><td>") == 1 and "full = patience:2" in fold_html(html, fold)
    # a folded row whose target is not in the table stays (the slowdown table has no full-depth row)
    alone = "| model | setting | recipe | dataset |\n|---|---|---|---|\n| m | patience:2 | r | d |\n"
    assert fold_markdown(alone, fold) == alone


def test_missing_summary_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="summary.csv not found"):
        refresh_from_tables(tmp_path)
    shutil.rmtree(tmp_path)


def test_refresh_command(shared_suite_out, tmp_path):
    import subprocess
    import sys

    write_report(shared_suite_out, tmp_path)
    done = subprocess.run([sys.executable, "-m", "robustness.cli", "refresh", str(tmp_path), "--num-classes", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'report.html'}" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "robustness.cli", "refresh", str(tmp_path / "nothing")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "summary.csv not found" in bad.stderr and len(bad.stderr.splitlines()) == 1
