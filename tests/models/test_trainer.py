"""The training loop: when it checkpoints, and batches of an epoch from any function (what adversarial training
plugs in)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from robustness.models.train import TrainConfig
from robustness.models.trainer import CHECKPOINT_EVERY_S, CheckpointSchedule, clean_batches, finish, fit, open_session


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
