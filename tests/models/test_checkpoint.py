"""Training checkpoints: a safetensors file (no pickle) that restores model, AdamW, scheduler and every RNG
exactly; identities compared option by option; unreadable files refused in one line."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

from robustness.models.checkpoint import (
    check_resumable,
    checkpoint_path,
    examples_digest,
    load_checkpoint,
    read_checkpoint_state,
    remove_checkpoint,
    save_checkpoint,
    training_identity,
)


def _setup(seed: int):
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW([{"params": model[0].parameters(), "weight_decay": 0.01},
                                   {"params": model[2].parameters(), "weight_decay": 0.0}], lr=1e-2)
    scheduler = get_linear_schedule_with_warmup(optimizer, 2, 20)
    return model, optimizer, scheduler


def _steps(model, optimizer, scheduler, n: int) -> list[float]:
    losses = []
    for _ in range(n):
        x = torch.randn(3, 4)  # the torch RNG draws the data and the dropout masks
        loss = model(x).logsumexp(-1).mean() + random.random() + float(np.random.rand())
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def test_restored_training_continues_bit_for_bit(tmp_path):
    random.seed(1)
    np.random.seed(1)
    model, optimizer, scheduler = _setup(0)
    _steps(model, optimizer, scheduler, 3)
    path = save_checkpoint(tmp_path / ".m.checkpoint.safetensors", {"step": 3, "identity": {}}, model, optimizer,
                           scheduler)
    expected = _steps(model, optimizer, scheduler, 4)
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    other, other_opt, other_sched = _setup(99)  # different weights and RNG until restored
    random.seed(7)
    np.random.seed(7)
    state = load_checkpoint(path, other, other_opt, other_sched)
    assert state["step"] == 3
    assert _steps(other, other_opt, other_sched, 4) == expected
    assert all(torch.equal(weights[k], v) for k, v in other.state_dict().items())
    assert other_sched.get_last_lr() == scheduler.get_last_lr()
    assert other_opt.param_groups[0]["betas"] == (0.9, 0.999)  # JSON lists back to tuples


def test_checkpoint_is_plain_safetensors(tmp_path):
    model, optimizer, scheduler = _setup(0)
    _steps(model, optimizer, scheduler, 1)
    path = save_checkpoint(tmp_path / "c.safetensors", {"step": 1, "identity": {"lr": 0.01}}, model, optimizer,
                           scheduler)
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
    assert {"model.0.weight", "optim.0.exp_avg", "optim.3.exp_avg_sq", "optim.0.step", "rng.torch"} <= keys
    state = read_checkpoint_state(path)
    assert state["identity"] == {"lr": 0.01} and state["scheduler"]["last_epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_identity_mismatch_names_the_option(tmp_path):
    model, optimizer, scheduler = _setup(0)
    ident = training_identity({"out": "a", "data_dir": "x", "device": "cuda", "lr": 5e-5, "epochs": 2},
                              examples_digest(["a", "b"], [0, 1]), examples_digest(["c"], [1]))
    assert set(ident) == {"lr", "epochs", "train_data", "eval_data"}  # location and device never count
    path = checkpoint_path(tmp_path / "model")
    assert path.name == ".model.checkpoint.safetensors" and path.parent == tmp_path
    assert check_resumable(path, ident, "--out m", "pass --overwrite") is None
    save_checkpoint(path, {"step": 7, "identity": ident}, model, optimizer, scheduler)
    assert check_resumable(path, dict(ident), "--out m", "pass --overwrite")["step"] == 7
    with pytest.raises(ValueError, match=r"^--out m: its checkpoint \(step 7\) was trained with epochs = 2 \(now 3\); "
                                         r"rerun with the same options to resume, or pass --overwrite$"):
        check_resumable(path, {**ident, "epochs": 3}, "--out m", "pass --overwrite")
    other_data = {**ident, "train_data": examples_digest(["a", "B"], [0, 1])}
    with pytest.raises(ValueError, match=r"train_data = 'sha256 [0-9a-f]{12}' \(now 'sha256 [0-9a-f]{12}'\)"):
        check_resumable(path, other_data, "--out m", "h")
    with pytest.raises(ValueError, match="seed = None"):  # an option the checkpoint did not have
        check_resumable(path, {**ident, "seed": 1}, "--out m", "h")
    remove_checkpoint(path)
    assert not path.exists()


def test_unreadable_checkpoint_is_one_line(tmp_path):
    path = tmp_path / ".m.checkpoint.safetensors"
    path.write_bytes(b"\x00" * 40)
    with pytest.raises(ValueError, match="is not a readable training checkpoint") as info:
        read_checkpoint_state(path)
    assert "\n" not in str(info.value)


def test_deferred_stop_records_the_first_signal_and_raises_on_the_second():
    import os
    import signal

    from robustness.models.checkpoint import DeferredStop
    from robustness.signals import Interrupted

    before = signal.getsignal(signal.SIGTERM)
    with DeferredStop() as stop:
        stop.check()  # nothing yet
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signal == "SIGTERM"  # recorded, the work goes on
        with pytest.raises(Interrupted) as info:
            stop.check()
        assert info.value.signal_name == "SIGTERM"
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)  # a second signal stops at once
            for _ in range(1000):
                pass
    assert signal.getsignal(signal.SIGTERM) == before
