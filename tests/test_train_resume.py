"""`robustness train` killed with SIGKILL resumes from its checkpoint and ends with the same weights, bit for bit
(CPU, one thread), as a training that was never interrupted; changed options are refused; `bench` resumes too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from robustness.cli import main
from robustness.models.checkpoint import checkpoint_path, read_checkpoint_state

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Runs the CLI after arranging a SIGKILL of this very process: in the forward pass of training step N
# ("forward N"), in the middle of writing the N-th checkpoint ("save N": half the file is written first), or
# never ("none 0"). A real SIGKILL, at a chosen moment. "term N" sends SIGTERM in the forward pass of step N.
DRIVER = """
import os, signal, sys
from pathlib import Path
mode, n = sys.argv[1], int(sys.argv[2])
calls = [0]
sig = signal.SIGTERM if mode == "term" else signal.SIGKILL
def hit():
    calls[0] += 1
    if calls[0] == n:
        os.kill(os.getpid(), sig)
if mode in ("forward", "term"):
    from robustness.models.pabee import PabeeModel
    real = PabeeModel.forward
    def forward(self, *a, **k):
        if self.training:
            hit()
        return real(self, *a, **k)
    PabeeModel.forward = forward
elif mode == "save":
    from robustness.models import checkpoint
    real_save = checkpoint.save_file
    def save_file(tensors, filename, metadata=None):
        if calls[0] + 1 == n:
            real_save(tensors, filename, metadata=metadata)
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])
        hit()
        return real_save(tensors, filename, metadata=metadata)
    checkpoint.save_file = save_file
from robustness.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def data_dir(make_tiny_sst2) -> Path:
    return make_tiny_sst2(validation=8, repeats=5, varied_lengths=True)


def _argv(backbone: Path, data_dir: Path, out: Path, *extra: str) -> list[str]:
    # 30 examples, batch 4: 8 steps per epoch, 3 epochs = 24 steps; PABEE loss, dropout on (torch RNG in use)
    return ["train", "--backbone", str(backbone), "--data-dir", str(data_dir), "--out", str(out), "--epochs", "3",
            "--batch-size", "4", "--seed", "5", *extra]


def _run(argv: list[str], mode: str = "none", n: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, mode, str(n), *argv], env=ENV, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_backbone_dir, data_dir) -> Path:
    """The model an uninterrupted training gives."""
    out = tmp_path_factory.mktemp("reference") / "model"
    done = _run(_argv(tiny_backbone_dir, data_dir, out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _assert_same_training(out: Path, reference: Path) -> dict:
    ours, theirs = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(ours[k].dtype == theirs[k].dtype and ours[k].equal(theirs[k]) for k in ours)
    record, ref_record = (json.loads((d / "train.json").read_text()) for d in (out, reference))
    assert record["history"] == ref_record["history"]  # losses and validation of every epoch, exactly
    return record


def test_sigkilled_twice_resumes_to_identical_weights(tmp_path, tiny_backbone_dir, data_dir, reference):
    out = tmp_path / "resumed"
    argv = _argv(tiny_backbone_dir, data_dir, out, "--checkpoint-every", "3")
    ckpt = checkpoint_path(out)
    # 1: killed in the forward pass of step 11 (checkpoint at step 9; steps 10-11 are lost and redone)
    assert _run(argv, "forward", 11).returncode == -signal.SIGKILL
    assert not out.exists() and read_checkpoint_state(ckpt)["step"] == 9
    # 2: resumed at step 9, killed while writing its 3rd checkpoint (steps 12, 15, then the end of epoch 2 at
    # step 16): the one of step 15 stays whole
    assert _run(argv, "save", 3).returncode == -signal.SIGKILL
    state = read_checkpoint_state(ckpt)
    assert (state["step"], state["epoch"], state["batch"]) == (15, 2, 7)
    assert list(tmp_path.glob(f".{ckpt.name}.*.tmp"))  # the half-written file a kill leaves
    # 3: resumed at step 15, to the end
    done = _run(argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not ckpt.exists() and not list(tmp_path.glob(".resumed.*"))  # no optimizer state left behind

    record = _assert_same_training(out, reference)
    assert [s["from_step"] for s in record["sessions"]] == [0, 9, 15]
    assert record["device"] == "cpu" and record["config"]["device"] == "auto" and record["amp"] is None


def test_sigterm_checkpoints_the_step_it_stopped_and_resumes(tmp_path, tiny_backbone_dir, data_dir, reference):
    out = tmp_path / "model"
    argv = _argv(tiny_backbone_dir, data_dir, out)  # no step checkpoints: only the stop's own
    stopped = _run(argv, "term", 13)
    assert stopped.returncode == 143 and "SIGTERM" in stopped.stderr
    state = read_checkpoint_state(checkpoint_path(out))
    assert (state["step"], state["epoch"], state["batch"]) == (13, 2, 5) and not out.exists()
    assert _run(argv).returncode == 0
    assert [s["from_step"] for s in _assert_same_training(out, reference)["sessions"]] == [0, 13]


def test_external_sigkill_then_resume(tmp_path, tiny_backbone_dir, data_dir):
    """SIGKILL from outside at whatever moment a step-1 checkpoint shows progress; the rerun completes."""
    out = tmp_path / "model"
    argv = _argv(tiny_backbone_dir, data_dir, out, "--checkpoint-every", "1")
    proc = subprocess.Popen([sys.executable, "-m", "robustness.cli", *argv], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            if (read_checkpoint_state(checkpoint_path(out)) or {}).get("step", 0) >= 4:
                break
        except ValueError:
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the training finished before SIGKILL arrived")
    step = read_checkpoint_state(checkpoint_path(out))["step"]
    assert 4 <= step < 24 and not out.exists()
    assert main(argv) == 0
    assert json.loads((out / "train.json").read_text())["sessions"][-1]["from_step"] >= step


def test_changed_option_is_refused_and_overwrite_restarts(tmp_path, tiny_backbone_dir, data_dir, capsys):
    out = tmp_path / "model"
    argv = _argv(tiny_backbone_dir, data_dir, out, "--checkpoint-every", "4")
    assert _run(argv, "forward", 6).returncode == -signal.SIGKILL
    assert read_checkpoint_state(checkpoint_path(out))["step"] == 4
    changed = [*argv, "--lr", "1e-4"]
    assert main(changed) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "lr = 5e-05 (now 0.0001)" in err and "--overwrite" in err and len(err) < 300
    other_data = [*argv, "--limit", "20"]
    assert main(other_data) == 2 and "limit = None (now 20)" in capsys.readouterr().err
    assert read_checkpoint_state(checkpoint_path(out))["step"] == 4  # untouched by the refusals
    # the device is not part of the identity: cpu instead of auto resumes
    assert main([*argv, "--device", "cpu", "--epochs", "1", "--overwrite"]) == 0  # epochs differ: restarts
    record = json.loads((out / "train.json").read_text())
    assert [s["from_step"] for s in record["sessions"]] == [0] and len(record["history"]) == 1


def test_resume_on_another_device_setting(tmp_path, tiny_backbone_dir, data_dir):
    out = tmp_path / "model"
    argv = _argv(tiny_backbone_dir, data_dir, out, "--checkpoint-every", "4")
    assert _run(argv, "forward", 6).returncode == -signal.SIGKILL
    assert main([*argv, "--device", "cpu"]) == 0
    record = json.loads((out / "train.json").read_text())
    assert [s["from_step"] for s in record["sessions"]] == [0, 4] and record["config"]["device"] == "cpu"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--amp", "bf16", "--device", "cpu"], "--amp bf16 needs a CUDA device"),
        (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
    ],
)
def test_bad_training_flags_are_one_line(tmp_path, tiny_backbone_dir, data_dir, capsys, extra, message):
    assert main(_argv(tiny_backbone_dir, data_dir, tmp_path / "m", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_cuda_without_cuda_is_one_line(tmp_path, tiny_backbone_dir, data_dir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(_argv(tiny_backbone_dir, data_dir, tmp_path / "m", "--device", "cuda")) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err
