"""``--device`` on the command line and ``device`` in a suite, on the CPU: cpu and auto (without CUDA) run and are
recorded; a bad value, or cuda where torch sees none, is one line and exit code 2 before any work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustness.cli import main

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
SENTENCES = ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic",
             "i have never been so bored", "warm , funny and surprisingly moving", "terrible"]


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture(scope="module")
def data(tmp_path_factory, write_sst2) -> Path:
    root = tmp_path_factory.mktemp("devdata")
    write_sst2(root, SENTENCES)
    return root / "data"


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_evaluate_runs_on_the_cpu_and_auto_is_the_cpu_without_cuda(device, no_cuda, tiny_pabee_dir, data, tmp_path):
    out = tmp_path / "eval.csv"
    assert main(["evaluate", "--model", str(tiny_pabee_dir), "--data-dir", str(data), "--out", str(out),
                 "--timing-repeats", "0", "--device", device]) == 0
    table = pd.read_csv(out)
    assert list(table["setting"]) == ["patience:1", "full"] and table["accuracy"].between(0, 1).all()


def test_evaluate_gives_the_same_table_at_any_batch_size(no_cuda, tiny_pabee_dir, data, tmp_path):
    tables = []
    for size in ("1", "4"):  # --batch-size overrides the device's default (32 on the CPU)
        out = tmp_path / f"eval{size}.csv"
        assert main(["evaluate", "--model", str(tiny_pabee_dir), "--data-dir", str(data), "--out", str(out),
                     "--timing-repeats", "0", "--batch-size", size, "--device", "cpu"]) == 0
        tables.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(tables[0], tables[1])


@pytest.mark.parametrize("command", ["evaluate", "attack", "transfer", "quality", "bench"])
def test_bad_devices_are_one_line_and_exit_2(command, no_cuda, tiny_pabee_dir, data, tmp_path, capsys):
    args = {
        "evaluate": ["evaluate", "--model", str(tiny_pabee_dir), "--data-dir", str(data), "--out",
                     str(tmp_path / "e.csv")],
        "attack": ["attack", "--model", str(tiny_pabee_dir), "--recipe", "deepwordbug", "--data-dir", str(data),
                   "--nltk-data", str(SHARED / "nltk_data"), "--out", str(tmp_path / "run")],
        "transfer": ["transfer", str(tmp_path), "--model", str(tiny_pabee_dir), "--out", str(tmp_path / "t")],
        "quality": ["quality", str(tmp_path)],
        "bench": ["bench", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "b")],
    }[command]
    assert main([*args, "--device", "gpu"]) == 2
    assert "--device must be auto, cpu, cuda or cuda:N, got 'gpu'" in _error(capsys)
    if command in ("evaluate", "attack"):
        assert main([*args, "--device", "cuda"]) == 2
        assert "--device cuda: torch sees no CUDA device" in _error(capsys)
    assert not (tmp_path / "run").exists() and not (tmp_path / "e.csv").exists()


def _suite(root: Path, model_dir: Path, extra: str = "") -> Path:
    path = root / "suite.toml"
    path.write_text('[suite]\nname = "d"\ndataset = "glue/sst2"\nn = 4\nquery_budget = 8\nbatch_size = 4\n'
                    f'recipes = ["deepwordbug"]\nsettings = [1]\n{extra}'
                    f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{model_dir}"\n')
    return path


def test_the_suite_field_device(tiny_pabee_dir, tmp_path):
    from robustness.suite.suite_file import load_suite

    assert load_suite(_suite(tmp_path, tiny_pabee_dir)).device == "auto"
    suite = load_suite(_suite(tmp_path, tiny_pabee_dir, 'device = "CUDA:1"\n'))
    assert suite.device == "cuda:1" and {s.device for s in suite.run_specs({"tp": str(tiny_pabee_dir)})} == {"cuda:1"}
    for bad, message in (('"gpu"', "device must be auto, cpu, cuda or cuda:N"), ("1", "device must be a string")):
        with pytest.raises(ValueError, match=f"suite.toml.*{message}"):
            load_suite(_suite(tmp_path, tiny_pabee_dir, f"device = {bad}\n"))


def test_bench_records_the_device_and_refuses_gpus_per_task_without_ray(no_cuda, tiny_pabee_dir, data, tmp_path,
                                                                       capsys):
    suite = _suite(tmp_path, tiny_pabee_dir, 'device = "auto"\n')
    flags = ["--out", str(tmp_path / "out"), "--data-dir", str(data), "--nltk-data", str(SHARED / "nltk_data"),
             "--workers", "1"]
    assert main(["bench", str(suite), *flags, "--gpus-per-task", "1"]) == 2
    assert "--gpus-per-task is for --engine ray" in _error(capsys)
    assert main(["bench", str(suite), *flags, "--device", "cpu"]) == 0
    [run] = (tmp_path / "out" / "runs").iterdir()
    assert json.loads((run / "spec.json").read_text())["device"] == "cpu"  # --device overrides the suite's
    assert json.loads((run / "run.json").read_text())["executor"]["devices"] == ["cpu"]
