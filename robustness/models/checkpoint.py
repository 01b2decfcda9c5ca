"""Training checkpoints: everything a killed ``train`` needs to go on exactly where it stopped.

A checkpoint is one safetensors file, ``.<name>.checkpoint.safetensors`` beside the model directory
``<name>`` it will become (the model directory itself appears only when training is complete). Its tensors are
the model's weights (``model.<name>``), the optimizer's per-parameter state (``optim.<index>.<key>``) and the
torch RNG states (``rng.torch``, ``rng.cuda``); its metadata entry ``robustness_checkpoint`` is JSON with the
rest: the identity of the training (:func:`training_identity`), the position (``step``, ``epoch``, ``batch``:
the next batch of that epoch), the epoch's losses so far, the validation history, the optimizer's param groups,
the scheduler's and the AMP grad scaler's state, the python and numpy RNG states and the work time so far.
Nothing is unpickled when it is read. It is written to a temporary sibling and renamed into place, so a kill
leaves the previous checkpoint (and at most a ``.<file>.<random>.tmp``, removed by the next run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.torch import load_file, save_file

__all__ = ["CHECKPOINT_EVERY_S", "CheckpointSchedule", "DeferredStop", "checkpoint_path", "check_resumable",
           "load_checkpoint", "read_checkpoint_state", "remove_checkpoint",
           "remove_interrupted_saves", "save_checkpoint", "training_identity"]

FORMAT = 1
_KEY = "robustness_checkpoint"
#: Default checkpoint interval: seconds of work.
CHECKPOINT_EVERY_S = 600.0


def checkpoint_path(out: str | Path) -> Path:
    """Where the checkpoint of a training into model directory ``out`` lives: a hidden sibling of ``out``."""
    out = Path(out)
    return out.with_name(f".{out.name}.checkpoint.safetensors")


def examples_digest(texts: list, labels: list[int]) -> str:
    """sha256 of a split's texts and labels, in order (the data a checkpoint was trained on)."""
    blob = json.dumps([list(texts), list(labels)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def training_identity(config: dict[str, Any], train_digest: str, eval_digest: str) -> dict[str, Any]:
    """What must be equal for a checkpoint to be resumed: the training options (``config``, without the output
    location, the data directory and the device, which never change a training) and the digests of its
    training and validation examples."""
    kept = {k: v for k, v in config.items() if k not in ("out", "data_dir", "device")}
    return {**kept, "train_data": train_digest, "eval_data": eval_digest}


def read_checkpoint_state(path: str | Path) -> dict[str, Any] | None:
    """The JSON part of the checkpoint at ``path`` (None when there is none); ``ValueError`` if unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            state = json.loads((handle.metadata() or {})[_KEY])
    except Exception as exc:  # safetensors raises its own error types for a damaged header
        raise ValueError(f"{path} is not a readable training checkpoint ({type(exc).__name__}); "
                         "delete it to start afresh") from None
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {state.get('format')!r}, expected {FORMAT}; delete it")
    return state


def check_resumable(path: str | Path, identity: dict[str, Any], what: str, hint: str) -> dict[str, Any] | None:
    """The checkpoint's state when its identity equals ``identity`` (None when there is no checkpoint);
    otherwise ``ValueError`` naming the first option that differs, e.g. ``lr = 5e-05 (now 0.0001)``.
    ``what`` names the training (``--out m``), ``hint`` says how to start afresh."""
    state = read_checkpoint_state(path)
    if state is None:
        return None
    saved = state["identity"]
    for key in [*identity, *(k for k in saved if k not in identity)]:
        old, new = saved.get(key), identity.get(key)
        if old != new:
            if key.endswith("_data"):
                old, new = f"sha256 {str(old)[:12]}", f"sha256 {str(new)[:12]}"
            raise ValueError(f"{what}: its checkpoint (step {state['step']}) was trained with {key} = {old!r} "
                             f"(now {new!r}); rerun with the same options to resume, or {hint}")
    return state


def _rng_state(device) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return tensors, {"python": [version, list(internal), gauss],
                     "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}


def _restore_rng(tensors: dict[str, Any], state: dict[str, Any], device) -> None:
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["rng.torch"])
    if device.type == "cuda" and "rng.cuda" in tensors:  # a training moved from the CPU starts the CUDA stream anew
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)


def save_checkpoint(path: str | Path, state: dict[str, Any], model, optimizer, scheduler, scaler=None,
                    device=None) -> Path:
    """Write the checkpoint atomically: ``state`` (JSON-able: identity, position, history, ...) plus the
    model, optimizer, scheduler, grad scaler (None without fp16 AMP) and RNG states."""
    import torch

    path = Path(path)
    device = torch.device(device or "cpu")
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        for key, value in values.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer state {key!r} is not a tensor")  # AdamW's are all tensors
            tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
    rng_tensors, rng = _rng_state(device)
    tensors.update(rng_tensors)
    full = {**state, "format": FORMAT, "rng": rng, "param_groups": optim["param_groups"],
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_KEY: json.dumps(full)})
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | Path, model, optimizer, scheduler, scaler=None, device=None) -> dict[str, Any]:
    """Restore the model, optimizer, scheduler, grad scaler and RNG states from ``path`` (on ``device``);
    returns its JSON state (identity, position, history, ...)."""
    import torch

    device = torch.device(device or "cpu")
    state = read_checkpoint_state(path)
    if state is None:
        raise ValueError(f"no training checkpoint at {path}")
    tensors = load_file(str(path))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    optim: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optim.setdefault(int(index), {})[name] = value
    fresh = optimizer.state_dict()["param_groups"]
    groups = [{k: tuple(v) if isinstance(f.get(k), tuple) else v for k, v in g.items()}
              for g, f in zip(state["param_groups"], fresh, strict=True)]
    optimizer.load_state_dict({"state": optim, "param_groups": groups})
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    _restore_rng(tensors, state["rng"], device)
    return state


def remove_interrupted_saves(path: str | Path) -> None:
    """Delete the temporary files a save of the checkpoint at ``path`` left when it was killed."""
    path = Path(path)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def remove_checkpoint(path: str | Path) -> None:
    """Delete the checkpoint at ``path`` and the temporary files a killed save of it left."""
    remove_interrupted_saves(path)
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()


class CheckpointSchedule:
    """When to checkpoint: every ``every_steps`` optimizer steps (global step a multiple of it), or, with
    ``every_steps`` None, once ``every_s`` seconds (of ``clock``) passed since the last checkpoint."""

    def __init__(self, every_steps: int | None = None, every_s: float = CHECKPOINT_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if every_steps is not None and every_steps < 1:
            raise ValueError(f"--checkpoint-every must be >= 1 optimizer step, got {every_steps}")
        self.every_steps, self.every_s, self.clock = every_steps, every_s, clock
        self.last = clock()

    def due(self, step: int) -> bool:
        if self.every_steps is not None:
            return step % self.every_steps == 0
        return self.clock() - self.last >= self.every_s

    def saved(self) -> None:
        self.last = self.clock()


class DeferredStop:
    """Within the block, a first SIGINT or SIGTERM is only recorded (``signal``: its name), so that the
    training loop finishes its step, checkpoints and then stops (:meth:`check` raises
    :class:`~robustness.signals.Interrupted`); a second one stops at once. Outside the main thread, nothing
    changes."""

    def __enter__(self) -> DeferredStop:
        self.signal: str | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        from robustness.signals import Interrupted

        name = signal.Signals(signum).name
        if self.signal is not None:
            raise Interrupted(name)
        self.signal = name

    def check(self) -> None:
        from robustness.signals import Interrupted

        if self.signal is not None:
            raise Interrupted(self.signal)

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
