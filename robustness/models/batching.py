"""Tokenisation with dynamic padding, and length-bucketed batch order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from robustness.data import Text

if TYPE_CHECKING:
    import torch


def encode(tokenizer, texts: Sequence[Text], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenise a batch (strings or (first, second) pairs), padded to its own longest sequence only."""
    if texts and isinstance(texts[0], (tuple, list)):
        first, second = [t[0] for t in texts], [t[1] for t in texts]
        batch = tokenizer(first, second, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    else:
        batch = tokenizer(list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def token_lengths(tokenizer, texts: Sequence[Text], max_length: int) -> list[int]:
    """Token count of every text after truncation (no padding)."""
    if texts and isinstance(texts[0], (tuple, list)):
        ids = tokenizer([t[0] for t in texts], [t[1] for t in texts], truncation=True, max_length=max_length)
    else:
        ids = tokenizer(list(texts), truncation=True, max_length=max_length)
    return [len(x) for x in ids["input_ids"]]


def bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, bucket_factor: int = 50) -> list[list[int]]:
    """Shuffled batches of similar-length examples: shuffle, cut into buckets of ``batch_size * bucket_factor``,
    sort each bucket by length, cut into batches, then shuffle the batch order. Deterministic for a seed."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    bucket = batch_size * bucket_factor
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start : start + bucket], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches in length order (for inference: least padding, deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
