"""Which GPU each suite worker gets: the local pool runs one worker per visible GPU (``--workers`` caps it), each
with ``CUDA_VISIBLE_DEVICES`` set to its own GPU, so that it sees one device (``cuda:0``); Ray workers request
``num_gpus`` (``--gpus-per-task``) and Ray sets their ``CUDA_VISIBLE_DEVICES``. A CPU suite (``--device cpu``,
or ``auto`` where torch sees no GPU) runs exactly as before devices existed: CPU workers, no GPU requested.

A GPU worker of the local pool gets the CPUs divided among the GPU workers as torch threads (a CPU worker: one).
The GPU workers of the local pool are spawned, never forked: the driver may have used CUDA already (it calibrates
and evaluates on the suite's device), and a CUDA context does not survive a fork.
"""

from __future__ import annotations

import os

from robustness.devices import check_device

__all__ = ["WORKER_DEVICE", "gpu_slots", "gpus_per_task", "visible_gpus"]

#: The device a GPU worker runs every task on: the one GPU its ``CUDA_VISIBLE_DEVICES`` shows it.
WORKER_DEVICE = "cuda:0"


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out, as ``CUDA_VISIBLE_DEVICES`` entries: the first
    ``torch.cuda.device_count()`` entries of that variable when it is set (indices or UUIDs), else ``0..n-1``."""
    import torch

    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    return [entry.strip() for entry in listed.split(",") if entry.strip()][:count]


def gpu_slots(device: str, workers: int | None, visible: list[str]) -> list[str] | None:
    """The ``CUDA_VISIBLE_DEVICES`` value of each local worker, or None for CPU workers (as today).

    ``auto``: one worker per visible GPU, CPU workers when there is none; ``cuda``: the same, but no GPU is a
    ``ValueError``; ``cuda:N``: one worker on the N-th visible GPU; ``cpu``: None. ``workers`` (``--workers``;
    None: no cap) caps the number of GPU workers."""
    device = check_device(device)
    if device == "cpu" or (device == "auto" and not visible):
        return None
    if not visible:
        raise ValueError(f"--device {device}: torch sees no CUDA device; use --device cpu or auto")
    if ":" in device:
        index = int(device.split(":")[1])
        if index >= len(visible):
            raise ValueError(f"--device {device}: {len(visible)} CUDA device(s) visible "
                             f"(cuda:0..cuda:{len(visible) - 1})")
        visible = [visible[index]]
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    return visible[: workers or len(visible)]


def gpus_per_task(device: str, requested: float | None) -> float:
    """GPUs each Ray worker requests: ``requested`` (``--gpus-per-task``), else 1 for ``cuda``/``cuda:N`` and 0
    otherwise (``auto`` requests none: the driver cannot know a cluster's nodes; say ``cuda`` to use them)."""
    device = check_device(device)
    if requested is None:
        return 1.0 if device.startswith("cuda") else 0.0
    if requested < 0:
        raise ValueError(f"--gpus-per-task must be >= 0, got {requested}")
    if requested > 0 and device == "cpu":
        raise ValueError("--gpus-per-task asks for GPUs but --device is cpu; use --device cuda")
    return float(requested)
