"""Fine-tune a PABEE classifier or its full-depth baseline: AdamW, linear warmup then decay, dynamic padding,
length-bucketed batches, validation after every epoch, ``train.json`` beside the saved model; resumable after
a kill (the loop and its checkpoints: :mod:`robustness.models.trainer`; the options:
:mod:`robustness.models.train_config`)."""

from __future__ import annotations

from pathlib import Path

from robustness.models.train_config import TrainConfig, check_train_out, default_backbone, seed_everything

__all__ = ["TrainConfig", "check_train_out", "default_backbone", "seed_everything", "train_model"]


def train_model(config: TrainConfig, *, progress: bool = True, overwrite: bool = False, restart: bool | None = None,
                checkpoint_every: int | None = None, hint: str = "pass --overwrite to start afresh") -> Path:
    """Train, validate every epoch, save model + tokenizer + ``train.json`` to ``config.out``; returns it.

    Resumable: a checkpoint beside ``config.out`` (:mod:`robustness.models.checkpoint`) is written every
    ``checkpoint_every`` optimizer steps (None: about every 10 minutes of work) and after each epoch but the
    last; a rerun with the same options resumes from it, a rerun with other options is refused naming the
    first that differs (``restart``, default ``overwrite``: delete it and start afresh). ``overwrite``: a model
    already in ``config.out`` may be replaced. The checkpoint is deleted once the model is saved."""
    from robustness.models.trainer import clean_batches, finish, fit, open_session

    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1 optimizer step, got {checkpoint_every}")
    session = open_session(config, overwrite=overwrite, restart=overwrite if restart is None else restart, hint=hint)
    fit(session, clean_batches(session), checkpoint_every=checkpoint_every, progress=progress)
    return finish(session, {"checkpoint_every": checkpoint_every})
