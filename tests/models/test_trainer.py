"""The training loop: when it checkpoints, and batches of an epoch from any function (what adversarial training
plugs in)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from robustness.models.checkpoint import CHECKPOINT_EVERY_S, CheckpointSchedule
from robustness.models.train import TrainConfig
from robustness.models.trainer import clean_batches, finish, fit, open_session


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_schedule_by_steps_counts_global_steps():
    schedule = CheckpointSchedule(every_steps=3)
    assert [s for s in range(1, 11) if schedule.due(s)] == [3, 6, 9]
    with pytest.raises(ValueError, match="--checkpoint-every must be >= 1"):
        CheckpointSchedule(every_steps=0)


def test_schedule_by_default_is_every_ten_minutes_of_work():
    clock = Clock()
    schedule = CheckpointSchedule(clock=clock)
    assert CHECKPOINT_EVERY_S == 600
    clock.now += 599
    assert not schedule.due(1)
    clock.now += 1
    assert schedule.due(2)
    schedule.saved()
    clock.now += 300
    assert not schedule.due(3)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "sst2").mkdir()
    rows = [{"sentence": f"film {w} {i}", "label": i % 2, "idx": i} for i, w in enumerate(["good", "bad"] * 5)]
    pd.DataFrame(rows).to_parquet(root / "sst2" / "train.parquet")
    pd.DataFrame(rows[:4]).to_parquet(root / "sst2" / "validation.parquet")
    return root


def _config(tmp_path, backbone, data_dir, **kw) -> TrainConfig:
    return TrainConfig(out=str(tmp_path / "m"), backbone=str(backbone), head="full", data_dir=str(data_dir),
                       batch_size=4, epochs=2, **kw)


def test_fit_takes_the_batches_of_each_epoch_from_a_function(tmp_path, tiny_backbone_dir, data_dir):
    session = open_session(_config(tmp_path, tiny_backbone_dir, data_dir))
    assert session.steps_per_epoch == 3 and session.total_steps == 6 and str(session.device) == "cpu"
    clean, asked = clean_batches(session), []

    def batches(epoch: int):
        asked.append(epoch)
        return [(["an adversarial text"] * len(labels), labels) for _, labels in clean(epoch)]

    fit(session, batches, progress=False)
    assert asked == [1, 2] and session.step == 6 and [h["steps"] for h in session.history] == [3, 3]
    out = finish(session, {"adversarial": {"fraction": 1.0}})
    record = json.loads((out / "train.json").read_text())
    assert record["adversarial"] == {"fraction": 1.0} and record["device"] == "cpu"


def test_fit_refuses_an_epoch_of_another_length(tmp_path, tiny_backbone_dir, data_dir):
    session = open_session(_config(tmp_path, tiny_backbone_dir, data_dir))
    with pytest.raises(ValueError, match="epoch 1 has 1 batches, expected 3"):
        fit(session, lambda epoch: [(["x"], [0])], progress=False)


def test_amp_on_cpu_is_refused_before_loading(tmp_path, tiny_backbone_dir, data_dir):
    with pytest.raises(ValueError, match=r"^--amp fp16 needs a CUDA device, but --device cpu trains on cpu"):
        open_session(_config(tmp_path, tiny_backbone_dir, data_dir, amp="fp16", device="cpu"))
    with pytest.raises(ValueError, match="amp must be bf16 or fp16"):
        _config(tmp_path, tiny_backbone_dir, data_dir, amp="int8")


def test_grad_scaler_path_trains_and_is_checkpointed(tmp_path, tiny_backbone_dir, data_dir):
    """fp16 AMP's grad-scaler bookkeeping (scale, unscale, skip-or-step, update) and its checkpointed state,
    exercised on the CPU with a CPU scaler (autocast itself needs CUDA: tests/gpu)."""
    import torch

    from robustness.models.checkpoint import load_checkpoint, read_checkpoint_state
    from robustness.models.trainer import _save, train_step

    session = open_session(_config(tmp_path, tiny_backbone_dir, data_dir))
    session.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)
    session.model.train()
    (texts, labels), *_ = clean_batches(session)(1)
    before = [p.detach().clone() for p in session.model.parameters()]
    losses = [train_step(session, texts, labels) for _ in range(3)]
    assert all(np.isfinite(losses)) and session.scaler.get_scale() == 2.0**11  # grew after 2 good steps
    assert any(not torch.equal(a, b) for a, b in zip(before, session.model.parameters(), strict=True))
    _save(session)
    assert read_checkpoint_state(session.checkpoint)["scaler"]["_growth_tracker"] == 1
    fresh = torch.amp.GradScaler("cpu")
    load_checkpoint(session.checkpoint, session.model, session.optimizer, session.scheduler, fresh)
    assert fresh.get_scale() == 2.0**11 and fresh.state_dict() == session.scaler.state_dict()


def test_cpu_training_uses_fused_adamw_with_the_reference_update(tmp_path, tiny_backbone_dir, data_dir):
    """On the CPU the optimizer is torch's fused AdamW: one step moves every weight as the per-tensor
    reference AdamW does with the same groups, learning rate and gradients (to float rounding)."""
    import copy

    import torch

    session = open_session(_config(tmp_path, tiny_backbone_dir, data_dir, device="cpu"))
    assert session.optimizer.defaults["fused"] is True
    reference_model = copy.deepcopy(session.model)
    names = dict(session.model.named_parameters())
    reference_params = dict(reference_model.named_parameters())
    groups = [{**{k: v for k, v in g.items() if k not in ("params", "fused", "foreach")},
               "params": [reference_params[n] for p in g["params"] for n, q in names.items() if q is p]}
              for g in session.optimizer.param_groups]
    reference = torch.optim.AdamW(groups, lr=session.config.lr, foreach=False)
    assert not any(g["fused"] for g in reference.param_groups)
    torch.manual_seed(0)
    for name, p in names.items():
        p.grad = torch.randn_like(p)
        reference_params[name].grad = p.grad.clone()
    before = {n: p.detach().clone() for n, p in names.items()}
    session.optimizer.step()
    reference.step()
    for name, p in names.items():
        assert not torch.equal(p, before[name]), name  # every weight moved
        torch.testing.assert_close(p, reference_params[name], rtol=1e-5, atol=1e-7)
