"""bench's training stage (locate_models): an interrupted training resumes from its checkpoint, to the weights an
uninterrupted one gives; a suite whose training options changed is refused before anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from robustness.cli import main
from robustness.models.checkpoint import checkpoint_path, read_checkpoint_state


@pytest.fixture(scope="module")
def data_dir(make_tiny_sst2) -> Path:
    return make_tiny_sst2(validation=8)


def _suite(tmp_path: Path, backbone: Path, lr: float = 5e-5) -> Path:
    path = tmp_path / f"suite-{lr}.toml"
    path.write_text('[suite]\nname = "t"\ndataset = "glue/sst2"\nn = 4\nrecipes = ["deepwordbug"]\n'
                    f'[[models]]\nid = "tp"\nhead = "pabee"\nsettings = [1]\n[models.train]\nbackbone = "{backbone}"\n'
                    f"epochs = 2\nbatch_size = 6\nseed = 3\nlr = {lr}\n")
    return path


def _interrupt_at_training_forward(monkeypatch, n: int) -> None:
    from robustness.models.pabee import PabeeModel

    real, calls = PabeeModel.forward, []

    def forward(self, *args, **kwargs):
        if self.training:
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PabeeModel, "forward", forward)


def test_bench_resumes_an_interrupted_training(tmp_path, tiny_backbone_dir, data_dir, monkeypatch, capsys):
    suite = _suite(tmp_path, tiny_backbone_dir)
    common = ["--data-dir", str(data_dir), "--train-only"]
    assert main(["bench", str(suite), "--out", str(tmp_path / "a"), *common]) == 0  # uninterrupted

    out = tmp_path / "b"
    target = out / "models" / "tp"
    _interrupt_at_training_forward(monkeypatch, 6)  # step 6 of 8: epoch 2 (4 steps each) checkpointed at step 4
    assert main(["bench", str(suite), "--out", str(out), *common]) == 130
    monkeypatch.undo()
    assert not target.exists() and read_checkpoint_state(checkpoint_path(target))["step"] == 4

    changed = _suite(tmp_path, tiny_backbone_dir, lr=1e-4)
    capsys.readouterr()
    assert main(["bench", str(changed), "--out", str(out), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert "lr = 5e-05 (now 0.0001)" in err and "delete .tp.checkpoint.safetensors" in err and "\n" not in err

    assert main(["bench", str(suite), "--out", str(out), *common]) == 0
    assert "resuming at step 4" in capsys.readouterr().out
    record = json.loads((target / "train.json").read_text())
    assert [s["from_step"] for s in record["sessions"]] == [0, 4]
    assert not checkpoint_path(target).exists()
    ours, theirs = load_file(target / "model.safetensors"), load_file(tmp_path / "a/models/tp/model.safetensors")
    assert all(ours[k].equal(theirs[k]) for k in theirs) and ours.keys() == theirs.keys()
    assert record["history"] == json.loads((tmp_path / "a/models/tp/train.json").read_text())["history"]


def test_bench_removes_a_stale_checkpoint_of_a_trained_model(tmp_path, tiny_backbone_dir, data_dir):
    suite = _suite(tmp_path, tiny_backbone_dir)
    out = tmp_path / "out"
    argv = ["bench", str(suite), "--out", str(out), "--data-dir", str(data_dir), "--train-only"]
    assert main(argv) == 0
    stale = checkpoint_path(out / "models" / "tp")
    stale.write_bytes(b"what a kill between the model's save and the checkpoint's deletion leaves")
    assert main(argv) == 0 and not stale.exists()


def test_bench_refuses_amp_on_the_cpu_before_training_anything(tmp_path, tiny_backbone_dir, data_dir, capsys):
    suite = _suite(tmp_path, tiny_backbone_dir)
    suite.write_text(suite.read_text() + '\n[[models]]\nid = "amp"\nhead = "full"\n[models.train]\n'
                     f'backbone = "{tiny_backbone_dir}"\ndevice = "cpu"\namp = "bf16"\n')
    assert main(["bench", str(suite), "--out", str(tmp_path / "o"), "--data-dir", str(data_dir), "--train-only"]) == 2
    assert "--amp bf16 needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "o" / "models").exists()  # the first model was not trained either
