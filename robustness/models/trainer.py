"""The resumable training loop behind :func:`robustness.models.train.train_model`.

A training is a :class:`TrainSession` (:func:`open_session`: data, model, optimizer, scheduler on a device,
restored from the checkpoint when one matches), run by :func:`fit` over the batches an :data:`EpochBatches`
function gives for each epoch (:func:`clean_batches`: the training split in shuffled length buckets), and saved
by :func:`finish`. ``fit`` writes a checkpoint (:mod:`robustness.models.checkpoint`) every ``checkpoint_every``
optimizer steps (by default whenever ``CHECKPOINT_EVERY_S`` seconds of work passed since the last one), after
every epoch's validation but the last, and when SIGINT or SIGTERM stops it. Resumed training equals
uninterrupted training: bit for bit on the CPU with the same number of threads.

Another source of batches (adversarial training) passes its own ``EpochBatches``: it must return the same
batches for an epoch when called again after a resume (the loop skips the ones already trained on), and as many
as :attr:`TrainSession.steps_per_epoch` (the scheduler's step budget).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from robustness.data import Examples, Text, load_examples
from robustness.devices import device_label, resolve_device
from robustness.models.checkpoint import (
    CheckpointSchedule,
    DeferredStop,
    check_resumable,
    checkpoint_path,
    examples_digest,
    load_checkpoint,
    remove_checkpoint,
    remove_interrupted_saves,
    save_checkpoint,
    training_identity,
)
from robustness.provenance import atomic_directory, utc_now, versions, write_json_atomic

if TYPE_CHECKING:
    from robustness.models.train_config import TrainConfig

#: One optimizer step's examples: (texts, labels).
Batch = tuple[list[Text], list[int]]
#: The batches of epoch ``e`` (1-based), in training order.
EpochBatches = Callable[[int], Sequence[Batch]]


@dataclass
class TrainSession:
    """A training in progress: what it trains and where it stands (``step`` optimizer steps done; next is
    batch ``batch`` of epoch ``epoch``; ``losses`` of this epoch so far; ``history`` of validated epochs)."""

    config: TrainConfig
    out: Path
    backbone: str
    device: Any
    train: Examples
    val: Examples
    tokenizer: Any
    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    steps_per_epoch: int
    identity: dict[str, Any]
    step: int = 0
    epoch: int = 1
    batch: int = 0
    losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    work_s: float = 0.0  # seconds of work in earlier sessions, up to their last checkpoint
    sessions: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def checkpoint(self) -> Path:
        return checkpoint_path(self.out)

    def work_time_s(self) -> float:
        return self.work_s + time.monotonic() - self.started


def resolve_training_device(config: TrainConfig) -> Any:
    """The ``torch.device`` of ``config.device``; ``ValueError`` for AMP on anything but CUDA."""
    device = resolve_device(config.device)
    if config.amp is not None and device.type != "cuda":
        raise ValueError(f"--amp {config.amp} needs a CUDA device, but --device {config.device} trains on "
                         f"{device}; leave --amp out (training is fp32 by default)")
    return device


def _load_splits(config: TrainConfig) -> tuple[Examples, Examples]:
    train = load_examples(config.dataset, config.train_split, data_dir=config.data_dir, limit=config.limit,
                          seed=config.seed)
    val = load_examples(config.dataset, config.eval_split, data_dir=config.data_dir, limit=config.eval_limit,
                        seed=config.seed)
    return train, val


def _identity(config: TrainConfig, train: Examples, val: Examples, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {**training_identity(dataclasses.asdict(config), examples_digest(train.texts, train.labels),
                                examples_digest(val.texts, val.labels)), **(extra or {})}


def check_checkpoint(config: TrainConfig, hint: str, extra_identity: dict[str, Any] | None = None) -> int | None:
    """The step of the checkpoint a training with ``config`` would resume (None: it starts afresh);
    ``ValueError`` when the checkpoint was made with other options (``hint`` says how to start afresh), or
    when the device cannot train it (missing CUDA, AMP on the CPU)."""
    resolve_training_device(config)
    train, val = _load_splits(config)
    state = check_resumable(checkpoint_path(config.out), _identity(config, train, val, extra_identity),
                            f"--out {config.out}", hint)
    return None if state is None else int(state["step"])


def open_session(config: TrainConfig, *, overwrite: bool = False, restart: bool = False,
                 hint: str = "pass --overwrite to start afresh",
                 extra_identity: dict[str, Any] | None = None, init: str | Path | None = None) -> TrainSession:
    """Data, model, optimizer and scheduler for ``config``, restored from its checkpoint when one matches.
    ``overwrite``: a model already in ``config.out`` may be replaced; ``restart``: a checkpoint made with other
    options is deleted (else ``ValueError`` naming the option, ending with ``hint``). ``extra_identity``: more
    options that must match to resume (e.g. adversarial training's), JSON values. ``init``: a saved model
    directory whose weights and tokenizer the training starts from (instead of the backbone and fresh heads;
    the optimizer and the schedule are new either way); its head must be ``config.head``."""
    import torch
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    from robustness.models.pabee import PabeeModel
    from robustness.models.train_config import check_train_out, default_backbone, seed_everything
    from robustness.resources.backbones import resolve_backbone

    out = check_train_out(config.out, overwrite)
    device = resolve_training_device(config)
    # a missing backbone is named before any data loads; with ``init`` it is only recorded (the weights come from
    # the saved model)
    backbone = (config.backbone or str(init)) if init is not None else resolve_backbone(
        config.backbone or default_backbone())
    train, val = _load_splits(config)
    identity = _identity(config, train, val, extra_identity)
    ckpt = checkpoint_path(out)
    try:
        state = check_resumable(ckpt, identity, f"--out {out}", hint)
    except ValueError:
        if not restart:
            raise
        remove_checkpoint(ckpt)
        state = None
    remove_interrupted_saves(ckpt)
    seed_everything(config.seed)
    if init is None:
        tokenizer = AutoTokenizer.from_pretrained(backbone, trust_remote_code=False)
        model = PabeeModel.from_backbone(backbone, head=config.head, num_labels=len(train.label_names),
                                         label_names=train.label_names, pooling=config.pooling).to(device)
    else:
        from robustness.models.pabee import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(init)
        if model.head != config.head or list(model.label_names) != list(train.label_names):
            raise ValueError(f"--init {init}: a {model.head} model with labels {list(model.label_names)}; "
                             f"the training needs a {config.head} model with labels {list(train.label_names)}")
        model = model.to(device)
    steps_per_epoch = -(-len(train) // config.batch_size)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    # fused on the CPU: the same AdamW update in one pass over each tensor (6x less optimizer time than the
    # per-tensor loop, a third of a quickstart training step); CUDA keeps torch's default
    optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=True if device.type == "cpu" else None)
    total = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * total), total)
    scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
    session = TrainSession(config, out, backbone, device, train, val, tokenizer, model, optimizer, scheduler,
                           scaler, steps_per_epoch, identity)
    if state is not None:
        load_checkpoint(ckpt, model, optimizer, scheduler, scaler, device)
        session.step, session.epoch, session.batch = state["step"], state["epoch"], state["batch"]
        session.losses, session.history = list(state["losses"]), list(state["history"])
        session.work_s, session.sessions = float(state["work_s"]), list(state["sessions"])
    session.sessions.append({"from_step": session.step, "device": device_label(device),
                             "torch_threads": torch.get_num_threads(), "started_at": utc_now()})
    return session


def clean_batches(session: TrainSession) -> EpochBatches:
    """The training split in shuffled length buckets, a fixed order per epoch (seed + epoch)."""
    from robustness.models.batching import bucketed_batches, token_lengths

    config, train = session.config, session.train
    lengths = token_lengths(session.tokenizer, train.texts, config.max_length)

    def batches(epoch: int) -> list[Batch]:
        return [([train.texts[i] for i in idx], [train.labels[i] for i in idx])
                for idx in bucketed_batches(lengths, config.batch_size, seed=config.seed + epoch)]

    return batches


def train_step(session: TrainSession, texts: Sequence[Text], labels: Sequence[int]) -> float:
    """One optimizer step on a batch (autocast under ``--amp``; fp16 through the grad scaler); its loss."""
    import torch

    from robustness.models.batching import encode

    s = session
    batch = {k: v.to(s.device) for k, v in encode(s.tokenizer, list(texts), s.config.max_length).items()}
    gold = torch.tensor(list(labels), device=s.device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(s.config.amp)
    autocast = torch.autocast(s.device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    with autocast:
        loss = s.model(**batch, labels=gold).loss
    if s.scaler is None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), 1.0)
        s.optimizer.step()
    else:
        s.scaler.scale(loss).backward()
        s.scaler.unscale_(s.optimizer)
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), 1.0)
        s.scaler.step(s.optimizer)  # skipped when the scaled gradients overflowed
        s.scaler.update()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    return loss.item()


class _OnDevice:
    """The model for :func:`~robustness.models.evaluate.all_layer_logits`: inputs to its device, logits back."""

    def __init__(self, model, device) -> None:
        self._model, self._device = model, device

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def all_layer_logits(self, **batch):
        return self._model.all_layer_logits(**{k: v.to(self._device) for k, v in batch.items()}).cpu()


def _save(session: TrainSession) -> None:
    s = session
    state = {"identity": s.identity, "step": s.step, "epoch": s.epoch, "batch": s.batch, "losses": s.losses,
             "history": s.history, "work_s": s.work_time_s(), "sessions": s.sessions}
    save_checkpoint(s.checkpoint, state, s.model, s.optimizer, s.scheduler, s.scaler, s.device)


def fit(session: TrainSession, epoch_batches: EpochBatches, *, checkpoint_every: int | None = None,
        progress: bool = True) -> None:
    """Train from where ``session`` stands to the last epoch, validating after each, checkpointing as the
    module docstring says. A SIGINT or SIGTERM stops it after the current step (or validation) with a
    checkpoint of that point (:class:`~robustness.models.checkpoint.DeferredStop`); a second one at once."""
    from robustness.models.evaluate import accuracy_table, all_layer_logits

    s, config = session, session.config
    schedule = CheckpointSchedule(checkpoint_every)
    s.started = time.monotonic()
    bar = tqdm(total=s.total_steps, initial=s.step, desc=f"train {config.head}", unit="step", disable=not progress)
    with DeferredStop() as stop, contextlib.closing(bar):
        while s.epoch <= config.epochs:
            batches = epoch_batches(s.epoch)
            if len(batches) != s.steps_per_epoch:
                raise ValueError(f"epoch {s.epoch} has {len(batches)} batches, expected {s.steps_per_epoch}")
            s.model.train()
            for texts, labels in batches[s.batch:]:
                s.losses.append(train_step(s, texts, labels))
                s.batch, s.step = s.batch + 1, s.step + 1
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(s.losses[-50:]):.4f}")
                if schedule.due(s.step) or stop.signal:  # SIGINT/SIGTERM: checkpoint this step, then stop
                    _save(s)
                    schedule.saved()
                    stop.check()
            s.model.eval()
            logits = all_layer_logits(_OnDevice(s.model, s.device), s.tokenizer, s.val.texts, batch_size=64,
                                      max_length=config.max_length)
            table = accuracy_table(s.model, logits, s.val.labels)
            s.history.append({"epoch": s.epoch, "train_loss": float(np.mean(s.losses)), "steps": len(s.losses),
                              "validation": table.to_dict(orient="records")})
            if progress:
                bar.write(f"epoch {s.epoch}: train loss {np.mean(s.losses):.4f}; validation " + ", ".join(
                    f"{r.setting} {r.accuracy:.2%} (x{r.layer_speedup:.2f})" for r in table.itertuples()))
            s.epoch, s.batch, s.losses = s.epoch + 1, 0, []
            if s.epoch <= config.epochs or stop.signal:
                _save(s)
                schedule.saved()
                stop.check()


def finish(session: TrainSession, extra_record: dict[str, Any] | None = None) -> Path:
    """Save model + tokenizer + ``train.json`` atomically to ``session.out``, then delete the checkpoint."""
    import torch

    s = session
    record = {"config": {**dataclasses.asdict(s.config), "backbone": s.backbone}, "num_train": len(s.train),
              "num_eval": len(s.val), "num_layers": s.model.num_layers, "history": s.history,
              "wall_time_s": s.work_time_s(), "torch_threads": torch.get_num_threads(),
              "device": device_label(s.device), "amp": s.config.amp, "sessions": s.sessions,
              "versions": versions(), **(extra_record or {})}
    # the directory appears whole or not at all; a killed save leaves ``.<name>.partial-<pid>``
    with atomic_directory(s.out, replace=True) as tmp:
        s.model.save_pretrained(tmp)
        s.tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "train.json", record)
    remove_checkpoint(s.checkpoint)
    return s.out
