"""Padding the wrapper's batches: a subset of texts tokenised once, padded like the tokenizer pads."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from robustness.attack.encoding import batches, pad, tokenize

SINGLES = ["a film", "a gripping , beautifully acted and wonderful film", "dull movie"]
PAIRS = [("who won ?", "the home team won the final"), ("is it raining", "no")]


@pytest.mark.parametrize("keys", [SINGLES, PAIRS])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_equals_the_tokenizers_own_padding(minilm_tokenizer, keys, side):
    enc = tokenize(minilm_tokenizer, keys, max_length=128)
    rows = [2, 0] if len(keys) == 3 else [1, 0]
    batch = pad(minilm_tokenizer, enc, rows, torch.device("cpu"), left=side == "left")
    subset = [keys[i] for i in rows]
    args = ([k[0] for k in subset], [k[1] for k in subset]) if isinstance(keys[0], tuple) else (subset,)
    expected = minilm_tokenizer(*args, padding=True, padding_side=side, return_tensors="pt")
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask"}
    for name, tensor in batch.items():
        assert torch.equal(tensor, expected[name]), name
    assert batch["input_ids"].shape[1] == max(len(enc["input_ids"][i]) for i in rows)  # its own longest only


def test_batches_follow_the_tokenizers_padding_side_without_advice_on_stderr(minilm_tokenizer, monkeypatch):
    monkeypatch.delenv("TRANSFORMERS_NO_ADVISORY_WARNINGS", raising=False)
    tokenizer = copy.deepcopy(minilm_tokenizer)
    tokenizer.deprecation_warnings.clear()  # a fresh tokenizer: it would give its advice on padding now
    tokenizer.padding_side = "left"
    messages, handler = [], logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    try:
        (positions, batch), = batches(tokenizer, SINGLES, 8, 128, torch.device("cpu"))
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert sorted(positions) == [0, 1, 2]
    assert batch["attention_mask"][:, -1].all() and not batch["attention_mask"][:, 0].all()  # padded on the left
    assert not [m for m in messages if "pad" in m]
