from __future__ import annotations

import pytest
import torch

from robustness.devices import check_device, default_batch_size, device_label, resolve_device


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:3", " CPU "])
def test_check_device_accepts_the_documented_forms(value):
    assert check_device(value) == value.strip().lower()


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:-1", "cuda:a", "", None, 0, "mps"])
def test_check_device_refuses_anything_else_naming_the_flag(value):
    with pytest.raises(ValueError, match="--device must be auto, cpu, cuda or cuda:N"):
        check_device(value)


def test_auto_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        resolve_device("cuda")


def test_auto_is_the_first_cuda_device_and_indices_are_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda:0")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"sees 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


def test_labels_and_batch_sizes():
    assert device_label("cpu") == "cpu"
    assert default_batch_size("cpu") == 32
    assert default_batch_size("cuda:0") == 128
