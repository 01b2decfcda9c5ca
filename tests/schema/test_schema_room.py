"""The schema room: light to import, below every stage, and the old import paths still hand out its objects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from robustness import schema
from robustness.schema import RunSpec, TransferSpec, VerdictOptions, check_goal, setting_order


def test_schema_imports_no_stage_and_no_heavy_library() -> None:
    code = ("import json, sys, robustness.schema; print(json.dumps(sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('torch', 'transformers', 'pandas', 'numpy', 'textattack') or "
            "m.startswith(('robustness.attack', 'robustness.suite', 'robustness.analysis', 'robustness.commands')))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    assert loaded == []


def test_old_paths_hand_out_the_schema_objects() -> None:
    from robustness.attack import records, transfer
    from robustness.attack.rundir import RECORDS_FILE, RUN_FILE, SPEC_FILE
    from robustness.models import settings
    from robustness.suite import specs

    assert specs.RunSpec is RunSpec and specs.VerdictOptions is VerdictOptions and specs.check_goal is check_goal
    assert specs.setting_order is setting_order and specs.parse_setting is schema.parse_setting
    assert transfer.TransferSpec is TransferSpec and records.read_records is schema.read_records
    assert records.RECORD_FIELDS == schema.RECORD_FIELDS and settings.Setting is schema.Setting
    assert (SPEC_FILE, RUN_FILE, RECORDS_FILE) == ("spec.json", "run.json", "records.jsonl")


def test_transfer_ids_unchanged_by_the_move() -> None:
    """Ids computed with the class's former home (robustness.attack.transfer) before the move."""
    spec = TransferSpec(source_run="/x/runs/a", source_run_id="pabee-p2_textfooler_sst2_abc123", model_id="Base_Line",
                        model_dir="/m", setting="entropy:0.35")
    assert spec.run_id == "base-line-ent0-35_from_pabee-p2_textfooler_sst2_abc123_e2e47a"
    moved = TransferSpec(source_run="/y", source_run_id="r1", model_id="pabee", model_dir="/n", setting=2, batch_size=8)
    assert moved.run_id == "pabee-p2_from_r1_b162ab"
    assert moved.setting == "patience:2"
    relocated = TransferSpec(source_run="/elsewhere", source_run_id="r1", model_id="pabee", model_dir="/other",
                             setting="patience:2", batch_size=8)
    assert relocated.run_id == moved.run_id  # locations stay out of the hash


def test_goals_and_setting_order() -> None:
    assert schema.GOALS == ("accuracy", "slowdown")
    check_goal("slowdown", 3, True)
    with pytest.raises(ValueError, match="only to the slowdown goal"):
        check_goal("accuracy", 3)
    with pytest.raises(ValueError, match="goal must be one of"):
        check_goal("speed")
    assert setting_order(["full", "maxprob:0.9", "patience:3", "entropy:0.1", "patience:1", "entropy:0.5",
                          "full"]) == ["patience:1", "patience:3", "entropy:0.5", "entropy:0.1", "maxprob:0.9", "full"]
    assert RunSpec(model_id="m", model_dir="/m", recipe="pwws", dataset="sst2", setting=2).setting == "patience:2"
