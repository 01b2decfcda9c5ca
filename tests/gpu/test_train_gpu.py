"""Training on CUDA (skipped without it): steps decrease the loss, weights stay fp32 with AMP off and on (bf16,
fp16 with its grad scaler checkpointed), and a checkpoint made on the CPU resumes on the GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from robustness.models.checkpoint import checkpoint_path, read_checkpoint_state
from robustness.models.train import TrainConfig, train_model
from robustness.models.trainer import _save, clean_batches, open_session, train_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def data_dir(make_tiny_sst2) -> Path:
    return make_tiny_sst2(validation=8)


def _config(tmp_path: Path, backbone: Path, data_dir: Path, **kw) -> TrainConfig:
    options = {"head": "pabee", "batch_size": 8, "device": "cuda", "lr": 5e-3, "warmup": 0.0, "epochs": 10, **kw}
    return TrainConfig(out=str(tmp_path / "m"), backbone=str(backbone), data_dir=str(data_dir), **options)


def _losses_on_one_batch(session, steps: int = 30) -> list[float]:
    session.model.train()
    (texts, labels), *_ = clean_batches(session)(1)
    return [train_step(session, texts, labels) for _ in range(steps)]


def _assert_learns(losses: list[float]) -> None:
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses


def _assert_fp32(session_or_dir) -> None:
    if isinstance(session_or_dir, Path):
        tensors = load_file(session_or_dir / "model.safetensors")
        assert all(t.dtype == torch.float32 for t in tensors.values() if t.is_floating_point())
    else:
        assert all(p.dtype == torch.float32 for p in session_or_dir.model.parameters())


def test_training_steps_on_gpu_decrease_the_loss(tmp_path, tiny_backbone_dir, data_dir):
    session = open_session(_config(tmp_path, tiny_backbone_dir, data_dir))
    assert session.device.type == "cuda" and next(session.model.parameters()).is_cuda
    _assert_learns(_losses_on_one_batch(session))


def test_amp_off_gives_fp32_weights(tmp_path, tiny_backbone_dir, data_dir):
    out = train_model(_config(tmp_path, tiny_backbone_dir, data_dir, epochs=1), progress=False)
    _assert_fp32(out)
    record = json.loads((out / "train.json").read_text())
    assert record["amp"] is None and record["device"].startswith("cuda:0 (")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_and_keeps_fp32_master_weights(tmp_path, tiny_backbone_dir, data_dir, amp):
    session = open_session(_config(tmp_path, tiny_backbone_dir, data_dir, amp=amp))
    assert (session.scaler is not None) == (amp == "fp16")
    _assert_learns(_losses_on_one_batch(session))
    _assert_fp32(session)
    if amp == "fp16":
        _save(session)
        assert read_checkpoint_state(session.checkpoint)["scaler"]["scale"] > 0
    out = train_model(_config(tmp_path, tiny_backbone_dir, data_dir, amp=amp, epochs=1), progress=False,
                      overwrite=True, restart=True)
    _assert_fp32(out)
    assert json.loads((out / "train.json").read_text())["amp"] == amp


def test_a_cpu_checkpoint_resumes_on_the_gpu(tmp_path, tiny_backbone_dir, data_dir, monkeypatch):
    from robustness.models.pabee import PabeeModel

    real, calls = PabeeModel.forward, []

    def forward(self, *args, **kwargs):
        if self.training:
            calls.append(1)
            if len(calls) == 5:
                raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PabeeModel, "forward", forward)
    with pytest.raises(KeyboardInterrupt):
        train_model(_config(tmp_path, tiny_backbone_dir, data_dir, device="cpu", epochs=2), progress=False,
                    checkpoint_every=2)
    monkeypatch.undo()
    out = tmp_path / "m"
    assert read_checkpoint_state(checkpoint_path(out))["step"] == 4
    train_model(_config(tmp_path, tiny_backbone_dir, data_dir, device="cuda", epochs=2), progress=False)
    record = json.loads((out / "train.json").read_text())
    assert [s["from_step"] for s in record["sessions"]] == [0, 4]
    assert record["sessions"][0]["device"] == "cpu" and record["sessions"][1]["device"].startswith("cuda:0 (")
    _assert_fp32(out)
