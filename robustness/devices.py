"""Where tensors live: ``--device auto|cpu|cuda|cuda:N`` (suite field ``device``).

``auto`` is the first CUDA device when torch sees one, else the CPU. The device a stage ran on is recorded
(spec.json / run.json / train.json) but is never part of a run's identity: a run may resume on another device.
Attacks run in fp32 on every device, so exits and predictions may differ across devices only where logits are
within float rounding of a tie (see the README, "Devices").

:func:`check_device` only parses (no torch import), so suites and the command line can refuse a bad value
before anything heavy loads; :func:`resolve_device` also asks torch whether that device exists.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["DEVICE_CHOICES", "check_device", "default_batch_size", "device_label", "process_device", "resolve_device",
           "strict_fp32", "use_device"]

#: The forms ``--device`` accepts (``cuda:N`` for any N >= 0).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_PROCESS_DEVICE = "cpu"  # where this process's shared models (the sentence encoder) load: see use_device


def check_device(value: Any, where: str = "--device") -> str:
    """The device string itself, or ``ValueError`` naming ``where`` for anything but auto/cpu/cuda/cuda:N."""
    if not isinstance(value, str) or not _DEVICE.match(value.strip().lower()):
        raise ValueError(f"{where} must be auto, cpu, cuda or cuda:N, got {value!r}")
    return value.strip().lower()


def resolve_device(value: str = "auto") -> Any:
    """``torch.device`` for ``value``; ``ValueError`` when CUDA is asked for and torch sees none (or too few)."""
    import torch

    value = check_device(value)
    if value == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {value}: torch sees no CUDA device (torch {torch.__version__}); "
                         "use --device cpu or auto, or install a CUDA build of torch (README, 'GPU')")
    index = int(value.split(":")[1]) if ":" in value else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"--device {value}: torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device(f"cuda:{index}")


def device_label(device: Any) -> str:
    """What records and run files say: ``"cpu"`` or ``"cuda:0 (NVIDIA H100 80GB HBM3)"``."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def default_batch_size(device: Any, cpu: int = 32, gpu: int = 128) -> int:
    """Per-device default batch size: larger on a GPU, where a batch costs about what one text costs."""
    return gpu if str(device).startswith("cuda") else cpu


def use_device(value: str) -> Any:
    """Make ``value`` (resolved) the device of this process's shared models, those loaded deep inside a recipe
    rather than by a command (the sentence encoder); the commands call it with their ``--device``. Returns
    the ``torch.device``. Until it is called that device is the CPU, as before devices existed."""
    global _PROCESS_DEVICE
    device = resolve_device(value)
    _PROCESS_DEVICE = str(device)
    if device.type == "cuda":
        strict_fp32()
    return device


def strict_fp32() -> None:
    """Full fp32 matrix products on a GPU (no TF32, whose 10-bit mantissa would change exits far beyond float
    rounding): attacks and evaluations run in fp32 on every device (robustness.models.agreement)."""
    import torch

    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def process_device() -> Any:
    """The ``torch.device`` set by :func:`use_device` (the CPU until then)."""
    import torch

    return torch.device(_PROCESS_DEVICE)
