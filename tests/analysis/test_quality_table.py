from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_runs import fake_records

from robustness.analysis.aggregate import load_runs, summarize
from robustness.analysis.quality import quality_findings, quality_table
from robustness.report import write_report


def _write_quality(run_dir: Path, values: dict[int, tuple[float, float, float]]) -> None:
    lines = [{"schema_version": 1, "example_id": i, "orig_perplexity": o, "adv_perplexity": a, "similarity": s,
              "lm": "tiny-lm"} for i, (o, a, s) in values.items()]
    (run_dir / "quality.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _succeeded(records: list[dict]) -> list[int]:
    return [r["example_id"] for r in records if r["result"] == "succeeded"]


@pytest.fixture
def scored_out(tmp_path: Path, make_run) -> Path:
    out = tmp_path / "suite"
    base = make_run(out, "bert-base", "full", None, "textfooler")
    pabee = make_run(out, "pabee", "pabee", 2, "textfooler")
    make_run(out, "pabee", "pabee", 1, "textfooler")  # not scored: no quality row
    base_ids, pabee_ids = _succeeded(fake_records(None, single_head=True)), _succeeded(fake_records(2))
    assert len(base_ids) >= 2 and len(pabee_ids) >= 2
    # baseline: ratios 2 and 4 (mean 3), similarities 0.9 and 0.7; one line for an example that did not succeed
    _write_quality(base, {base_ids[0]: (10.0, 20.0, 0.9), base_ids[1]: (5.0, 20.0, 0.7), 99: (1.0, 1000.0, 0.0)})
    _write_quality(pabee, {i: (10.0, 10.0 * (k + 1), 0.8) for k, i in enumerate(pabee_ids)})
    return out


def test_quality_table_means(scored_out: Path) -> None:
    table = quality_table(load_runs([scored_out]))
    assert sorted(table["setting"]) == ["full", "patience:2"]
    base = table[table["head"] == "full"].iloc[0]
    assert (base["quality_n"], base["ppl_ratio_mean"], base["similarity_mean"]) == (2, 3.0, pytest.approx(0.8))
    assert (base["orig_perplexity_mean"], base["adv_perplexity_mean"], base["lm"]) == (7.5, 20.0, "tiny-lm")
    pabee = table[table["head"] == "pabee"].iloc[0]
    n = pabee["quality_n"]
    assert pabee["ppl_ratio_mean"] == pytest.approx(sum(range(1, n + 1)) / n)


def test_quality_findings_and_report(scored_out: Path, tmp_path: Path) -> None:
    runs = load_runs([scored_out])
    lines = quality_findings(runs, summarize(runs))
    assert len(lines) == 1  # two or three texts: nothing is resolved, the setting joins the "no difference" line
    line = lines[0]
    assert line.startswith("textfooler on sst2, vs bert-base: no significant difference in text quality for "
                           "pabee patience:2 (mean perplexity ratio")
    assert "vs 3.00" in line and "similarity 0.800 vs 0.800" in line
    md, _ = write_report([scored_out], tmp_path / "report")
    text = md.read_text()
    assert "## Quality of adversarial text" in text and line in text
    assert text.index("## Summary") < text.index("## Quality of adversarial text") < text.index("## Findings")
    assert (tmp_path / "report" / "tables" / "quality.csv").is_file()


def _all_succeeded(patience: int | None, n: int, single_head: bool = False) -> list[dict]:
    template = next(r for r in fake_records(patience, single_head) if r["result"] == "succeeded")
    return [{**template, "example_id": i, "dataset_index": 100 + i, "orig_text": f"text {i}",
             "adv_text": f"adv | {i}"} for i in range(n)]


def test_quality_findings_single_out_differing_settings_and_gather_the_rest(tmp_path: Path, make_run) -> None:
    out, n = tmp_path / "suite", 8
    base = make_run(out, "bert-base", "full", None, "pwws", records=_all_succeeded(None, n, single_head=True))
    worse = make_run(out, "pabee", "pabee", 2, "pwws", records=_all_succeeded(2, n))
    alike = [make_run(out, "pabee", "pabee", p, "pwws", records=_all_succeeded(p, n)) for p in (1, None)]
    lonely = make_run(out, "pabee", "pabee", 3, "pwws", records=_all_succeeded(3, n))
    _write_quality(base, {i: (10.0, 20.0 + i, 0.9) for i in range(n)})  # ratios 2.0-2.7
    _write_quality(worse, {i: (10.0, 50.0 + i, 0.6) for i in range(n)})  # ratios 5.0-5.7: separated
    for run in alike:
        _write_quality(run, {i: (10.0, 20.0 + i, 0.9) for i in range(n)})  # the baseline's texts' quality
    _write_quality(lonely, {0: (10.0, 20.0, 0.9)})
    runs = load_runs([out])
    lines = quality_findings(runs, summarize(runs))
    assert len(lines) == 3
    differ = [line for line in lines if "differ in quality" in line]
    assert len(differ) == 1 and differ[0].startswith("pwws on sst2, vs bert-base: pabee patience:2's adversarial")
    assert "mean perplexity ratio 5.35 vs 2.35" in differ[0] and "similarity 0.600 vs 0.900" in differ[0]
    (few,) = [line for line in lines if "too few" in line]
    assert "pabee patience:3" in few and "(1 and 8)" in few
    (same,) = [line for line in lines if "no significant difference" in line]
    assert "pabee patience:1" in same and "pabee full" in same and "patience:2" not in same
    assert "mean perplexity ratio 2.35 vs 2.35" in same
