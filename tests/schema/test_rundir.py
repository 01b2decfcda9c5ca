"""Reading a run directory through the schema: spec.json, run.json, the record count check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustness.schema.rundir import (
    check_record_count,
    is_run_dir,
    read_run_files,
    read_run_info,
    read_spec,
    spec_setting,
)

SPEC = {"model_id": "m", "recipe": "pwws", "dataset": "sst2", "num_layers": 3, "head": "pabee", "setting": "full"}


def _run(tmp_path: Path, spec: object = SPEC, info: object | None = None) -> Path:
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    if info is not None:
        (tmp_path / "run.json").write_text(json.dumps(info))
    return tmp_path


def test_read_spec_and_info(tmp_path: Path) -> None:
    run = _run(tmp_path, info={"status": "complete", "num_records": 2})
    assert is_run_dir(run) and not is_run_dir(tmp_path / "absent")
    assert read_spec(run) == SPEC and read_run_info(run)["num_records"] == 2


@pytest.mark.parametrize(("spec", "message"), [
    ({k: v for k, v in SPEC.items() if k != "num_layers"}, "spec.json lacks num_layers"),
    ({**SPEC, "head": "deebert"}, "head must be 'pabee' or 'full'"),
    ([1, 2], "must hold a JSON object"),
])
def test_read_spec_refuses(tmp_path: Path, spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_spec(_run(tmp_path, spec))


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing spec\.json"):
        read_spec(tmp_path)
    with pytest.raises(ValueError, match=r"missing run\.json"):
        read_run_info(_run(tmp_path))
    _run(tmp_path, {"model_id": "m"})  # run.json is reported missing before the spec's missing fields
    with pytest.raises(ValueError, match=r"missing run\.json"):
        read_run_files(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(ValueError, match="lacks recipe, dataset, num_layers, head"):
        read_run_files(tmp_path)


def test_spec_setting_reads_old_patience_specs() -> None:
    assert spec_setting({"setting": "entropy:0.35"}) == "entropy:0.35"
    assert spec_setting({"patience": 2}) == "patience:2"
    assert spec_setting({"patience": None}) == "full"


def test_record_count(tmp_path: Path) -> None:
    check_record_count(tmp_path, {"status": "complete", "num_records": 3}, 3)
    check_record_count(tmp_path, {"status": "running", "num_records": 3}, 1)  # not complete: not checked
    with pytest.raises(ValueError, match="holds 2 whole records but .*run.json says 3"):
        check_record_count(tmp_path, {"status": "complete", "num_records": 3}, 2)
