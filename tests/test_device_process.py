"""The process's device (robustness.devices.use_device): where shared models such as the sentence encoder load,
and strict fp32 once a GPU is chosen -- with a faked CUDA, so on the CPU."""

from __future__ import annotations

import pytest
import torch

from robustness import devices


@pytest.fixture
def restore(monkeypatch):
    monkeypatch.setattr(devices, "_PROCESS_DEVICE", "cpu")
    precision, tf32 = torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32
    yield
    torch.set_float32_matmul_precision(precision)
    torch.backends.cuda.matmul.allow_tf32 = tf32


def test_the_process_device_is_the_cpu_until_a_command_chooses_one(restore, monkeypatch):
    assert devices.process_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.use_device("auto") == torch.device("cpu") and devices.process_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        devices.use_device("cuda")
    assert devices.process_device() == torch.device("cpu")  # a refused device changes nothing


def test_choosing_a_gpu_makes_matrix_products_strict_fp32(restore, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    torch.set_float32_matmul_precision("high")  # TF32 allowed, as some libraries set it
    assert devices.use_device("cuda:1") == torch.device("cuda:1")
    assert devices.process_device() == torch.device("cuda:1")
    assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cuda.matmul.allow_tf32


def test_the_sentence_encoder_loads_on_the_process_device(restore, monkeypatch):
    from robustness.resources import sentence_encoder

    made = []

    class FakeEncoder:
        def __init__(self, path: str, device: str) -> None:
            made.append((path, device))

    monkeypatch.setattr(sentence_encoder, "_MiniLM", FakeEncoder)
    monkeypatch.setattr(sentence_encoder, "_ENCODERS", {})
    monkeypatch.setattr(sentence_encoder, "sentence_encoder_path", lambda explicit=None: "/minilm")
    first = sentence_encoder.minilm()
    assert sentence_encoder.minilm() is first and made == [("/minilm", "cpu")]
    monkeypatch.setattr(devices, "_PROCESS_DEVICE", "cuda:0")
    assert sentence_encoder.minilm() is not first and made[-1] == ("/minilm", "cuda:0")
