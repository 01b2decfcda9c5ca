"""The trigger table and the report's "Universal triggers" section, from hand-written trigger directories."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from robustness.analysis.triggers import find_triggers, trigger_table
from robustness.report import report_outputs, write_report
from robustness.report_sections import trigger_section


def _row(model_id: str, setting: str, replayed: bool, clean: float, trigger: float) -> dict:
    gain = (3 / trigger - 1) / (3 / clean - 1)
    return {"trigger_id": "pabee-p1_trigger3_sst2_abc123", "prefix": "zebra zebra zebra", "length": 3,
            "source_model_id": "pabee", "source_setting": "patience:1", "model_id": model_id, "setting": setting,
            "replayed": replayed, "dataset": "glue/sst2", "n": 4, "clean_mean_exit": clean,
            "trigger_mean_exit": trigger, "exit_shift": trigger - clean, "efficiency_gain_left": gain,
            "clean_accuracy": 0.75, "trigger_accuracy": 0.5, "trigger_at_last_layer": 0.5,
            "prediction_changed": 0.25}


def _write_trigger(root: Path, name: str, status: str, rows: list[dict]) -> Path:
    path = root / "triggers" / name
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"kind": "trigger", "run_id": name, "model_id": "pabee"}))
    (path / "run.json").write_text(json.dumps({"status": status}))
    (path / "evaluation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    return path


def test_trigger_table_reads_complete_triggers_beside_runs(suite_out):
    _write_trigger(suite_out, "done", "complete", [_row("pabee", "patience:2", True, 2.5, 3.0),
                                                    _row("pabee", "patience:1", False, 2.0, 2.5)])
    _write_trigger(suite_out, "cut", "running", [_row("pabee", "patience:1", False, 2.0, 3.0)])
    assert [p.name for p in find_triggers([suite_out / "runs"])] == ["cut", "done"]
    summary = pd.DataFrame([{"goal": "slowdown", "recipe": "textfooler", "model_id": "pabee", "setting": "patience:1",
                             "dataset": "glue/sst2", "efficiency_gain_left": 0.25, "slowdown_score": "exit"},
                            {"goal": "slowdown", "recipe": "textfooler", "model_id": "pabee", "setting": "patience:1",
                             "dataset": "glue/sst2", "efficiency_gain_left": 0.5, "slowdown_score": "waffle"}])
    table = trigger_table([suite_out / "runs"], summary)
    assert table["setting"].tolist() == ["patience:1", "patience:2"]  # the search's own row first
    assert table["efficiency_gain_left"].tolist() == [(3 / 2.5 - 1) / (3 / 2 - 1), 0.0]
    assert table["attack_gain_left"][0] == "textfooler=0.250 textfooler/waffle=0.500"  # the search score named
    assert pd.isna(table["attack_gain_left"][1])
    (title, blocks), = trigger_section(table)
    assert title == "Universal triggers" and blocks[1][1]["prefix"].tolist() == ["zebra zebra zebra"] * 2
    assert trigger_section(trigger_table([suite_out.parent / "elsewhere"])) == []


def test_report_has_the_universal_triggers_section(suite_out, tmp_path):
    _write_trigger(suite_out, "done", "complete", [_row("pabee", "patience:1", False, 2.0, 2.5)])
    md, _ = write_report(suite_out, tmp_path / "report")
    text = md.read_text()
    assert "Universal triggers" in text and "zebra zebra zebra" in text
    assert pd.read_csv(tmp_path / "report" / "tables" / "triggers.csv")["exit_shift"].tolist() == [0.5]
    assert "tables/triggers.csv" in report_outputs()
