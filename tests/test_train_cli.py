from __future__ import annotations

import json

import pandas as pd
import pytest

from robustness.cli import main
from robustness.models.pabee import load_model_and_tokenizer


@pytest.fixture(scope="module")
def tiny_data_dir(make_tiny_sst2):
    return make_tiny_sst2(validation=10)


def test_train_then_evaluate(tmp_path, tiny_backbone_dir, tiny_data_dir, capsys):
    out = tmp_path / "model"
    args = ["train", "--backbone", str(tiny_backbone_dir), "--head", "pabee", "--out", str(out), "--epochs", "2",
            "--batch-size", "8", "--data-dir", str(tiny_data_dir), "--seed", "1"]
    assert main(args) == 0
    record = json.loads((out / "train.json").read_text())
    assert record["num_train"] == 24 and record["num_eval"] == 10 and record["num_layers"] == 2
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert all(h["steps"] == 3 for h in record["history"])
    assert [row["setting"] for row in record["history"][-1]["validation"]] == ["patience:1", "full"]
    model, tokenizer = load_model_and_tokenizer(out)
    assert model.head == "pabee" and model.label_names == ["negative", "positive"]
    assert tokenizer("good")["input_ids"]

    # refuses to overwrite without --overwrite: one line, exit code 2, model untouched
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already holds a model" in err
    assert (out / "model.safetensors").read_bytes() == before

    csv = tmp_path / "eval.csv"
    assert main(["evaluate", "--model", str(out), "--data-dir", str(tiny_data_dir), "--out", str(csv),
                 "--timing-repeats", "1"]) == 0
    table = pd.read_csv(csv)
    assert list(table["setting"]) == ["patience:1", "full"]
    assert main(["evaluate", "--model", str(out), "--data-dir", str(tiny_data_dir), "--out", str(csv)]) == 2
    assert "exists" in capsys.readouterr().err


def test_training_is_reproducible(tmp_path, tiny_backbone_dir, tiny_data_dir):
    from robustness.models.train import TrainConfig, train_model

    losses = []
    for name in ("a", "b"):
        config = TrainConfig(out=str(tmp_path / name), backbone=str(tiny_backbone_dir), head="full",
                             batch_size=8, data_dir=str(tiny_data_dir), seed=3)
        train_model(config, progress=False)
        losses.append(json.loads((tmp_path / name / "train.json").read_text())["history"][0]["train_loss"])
    assert losses[0] == losses[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "x", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["train", "--out", "x", "--epochs", "0"], "epochs must be >= 1"),
        (["evaluate", "--model", "/nonexistent", "--out", "x.csv"], "no model at /nonexistent"),
        (["attack", "--model", "m", "--recipe", "pwws", "--patience", "0", "--out", "r"], "patience must be"),
        (["attack", "--model", "m", "--recipe", "pwws", "--setting", "depth:3", "--out", "r"], "a setting must be"),
        (["attack", "--model", "m", "--recipe", "pwws", "--setting", "full", "--patience", "2", "--out", "r"],
         "not both"),
        (["attack", "--model", "m", "--recipe", "pwws", "--patience", "entropy:0.2", "--out", "r"], "use --setting"),
        (["attack", "--model", "m", "--recipe", "pwws", "--goal-target", "3", "--out", "r"], "only to the slowdown"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_train_split_flags(tmp_path, tiny_backbone_dir, tiny_data_dir):
    out = tmp_path / "model"
    assert main(["train", "--backbone", str(tiny_backbone_dir), "--head", "full", "--out", str(out),
                 "--batch-size", "8", "--data-dir", str(tiny_data_dir), "--train-split", "validation",
                 "--eval-split", "train", "--eval-limit", "4"]) == 0
    record = json.loads((out / "train.json").read_text())
    assert (record["num_train"], record["num_eval"]) == (10, 4)
    assert (record["config"]["train_split"], record["config"]["eval_split"]) == ("validation", "train")


def test_train_from_a_resource_bundle(tmp_path, tiny_backbone_dir, tiny_data_dir, monkeypatch):
    monkeypatch.delenv("ROBUSTNESS_RESOURCES", raising=False)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "data").symlink_to(tiny_data_dir)
    out = tmp_path / "model"
    assert main(["train", "--backbone", str(tiny_backbone_dir), "--head", "full", "--out", str(out),
                 "--batch-size", "8", "--resources", str(bundle), "--limit", "8"]) == 0
    assert json.loads((out / "train.json").read_text())["config"]["data_dir"] == str(bundle / "data")
