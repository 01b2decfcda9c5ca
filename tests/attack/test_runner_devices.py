"""The device of a run (``device`` in RunSpec/TransferSpec): recorded in spec.json and run.json, never part of the
run's identity, so a run started on one device resumes on another. CPU only: a "cuda" spec is checked for its
identity and its recorded spec, and a run whose spec.json says it started on a GPU is resumed on the CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
if not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

from robustness.attack.records import read_records  # noqa: E402
from robustness.attack.runner import run_attack  # noqa: E402
from robustness.attack.transfer import TransferSpec  # noqa: E402
from robustness.suite.specs import RunSpec  # noqa: E402

SENTENCES = [("a gripping , beautifully acted film", 1), ("dull and lifeless", 0), ("an instant classic", 1),
             ("i have never been so bored in a cinema", 0)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, write_sst2) -> Path:
    assert [y for _, y in SENTENCES] == [1, 0, 1, 0]  # the labels write_sst2 gives
    root = tmp_path_factory.mktemp("data")
    write_sst2(root, [s for s, _ in SENTENCES])
    return root / "data"


def make_spec(model_dir: Path, data_dir: Path, **overrides) -> RunSpec:
    values = dict(model_id="tiny", model_dir=str(model_dir), recipe="deepwordbug", dataset="sst2", setting=1,
                  n=len(SENTENCES), seed=0, query_budget=12, batch_size=4, data_dir=str(data_dir))
    return RunSpec(**{**values, **overrides})


def test_the_device_is_not_part_of_a_runs_identity(tmp_path):
    # MiniLM: the sentence encoder of every run made before devices (and USE-m3) existed
    base = dict(model_id="m", model_dir="/a", recipe="textfooler", dataset="glue/sst2", setting="patience:2",
                sentence_encoder="minilm")
    ids = {RunSpec(**base, device=d).run_id for d in ("auto", "cpu", "cuda", "cuda:1", " CUDA:0 ")}
    assert len(ids) == 1
    assert ids == {"m-p2_textfooler_sst2_fcd203"}  # the id this spec had before devices existed
    # a spec.json written before devices existed reads as device auto, with the same id
    old = {k: v for k, v in RunSpec(**base).to_dict().items() if k != "device"}
    assert RunSpec.from_dict(old).device == "auto" and RunSpec.from_dict(old).run_id in ids
    transfer = dict(source_run="/r", source_run_id="r1", model_id="m", model_dir="/a", setting="full")
    assert {TransferSpec(**transfer, device=d).run_id for d in ("cpu", "cuda:3")} == {"m-pfull_from_r1_989b9d"}
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        RunSpec(**base, device="gpu")


def test_a_run_started_on_a_gpu_resumes_on_the_cpu(tiny_pabee_dir, data_dir, tmp_path):
    whole = run_attack(make_spec(tiny_pabee_dir, data_dir, device="cpu"), tmp_path / "whole", progress=False)
    out = tmp_path / "moved"

    def stop_after_two(record):
        if record["example_id"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_attack(make_spec(tiny_pabee_dir, data_dir, device="cpu"), out, progress=False, on_record=stop_after_two)
    spec_json = json.loads((out / "spec.json").read_text())
    assert spec_json["device"] == "cpu"
    spec_json["device"] = "cuda:1"  # as if the first session had run on a GPU
    (out / "spec.json").write_text(json.dumps(spec_json))
    run_attack(make_spec(tiny_pabee_dir, data_dir, device="auto"), out, progress=False)  # auto: the CPU here
    strip = [{k: v for k, v in r.items() if k != "attack_time_s"} for r in read_records(out / "records.jsonl")]
    assert strip == [{k: v for k, v in r.items() if k != "attack_time_s"}
                     for r in read_records(whole / "records.jsonl")]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["resumed_records"] == 2 and run["device"] == "cpu"
    assert json.loads((out / "spec.json").read_text())["device"] == "cuda:1"  # spec.json: the first session's


def test_cuda_without_a_gpu_is_one_line_before_any_file(tiny_pabee_dir, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        run_attack(make_spec(tiny_pabee_dir, data_dir, device="cuda"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "spec.json").exists()
